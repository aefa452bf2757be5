"""Starts npm `oauth2-mock-server` (tests/servers/oauth, pinned 8.2.3) with the secret-checking
wrapper `server.mjs` on a free 127.0.0.1 port, and stops it by PID."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent / "oauth"


def available() -> str | None:
    """None when it can run, else why not (for pytest.skip)."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HERE / "node_modules" / "oauth2-mock-server").is_dir():
        return f"run `npm ci` in {HERE}"
    return None


@dataclass
class OAuthMock:
    process: subprocess.Popen[str]
    url: str

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def start(clients: dict[str, str], users: dict[str, str] | None = None, *, require_scope: bool = False) -> OAuthMock:
    env = {
        **os.environ,
        "PORT": "0",
        "CLIENTS": json.dumps(clients),
        "USERS": json.dumps(users or {}),
        "REQUIRE_SCOPE": "1" if require_scope else "0",
    }
    process = subprocess.Popen(
        ["node", "server.mjs"], cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the server prints its port or exits
    if not line.startswith("listening "):
        process.kill()
        process.wait()
        raise RuntimeError(f"oauth2-mock-server did not start: {line}{process.stdout.read()[-2000:]}")
    return OAuthMock(process, f"http://127.0.0.1:{int(line.split()[1])}")
