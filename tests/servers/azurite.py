"""Starts Azurite's table service (npm `azurite`, pinned in tests/servers/azurite) on 127.0.0.1,
in a temporary folder, without its telemetry, and stops it by PID.

    with start(tmp_path) as azurite:                      # http, shared key
        azurite.connection_string
    with start(tmp_path, tls=(cert, key)) as azurite:     # https + `--oauth basic`: bearer tokens
        azurite.endpoint                                  # https://127.0.0.1:<port>/devstoreaccount1

The development account and key are Azurite's own (its README, `EMULATOR_ACCOUNT_KEY` in its source).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from tests.peers import free_port

HERE = Path(__file__).resolve().parent / "azurite"
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def available() -> str | None:
    """None when it can run, else why not (for pytest.skip)."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HERE / "node_modules" / ".bin" / "azurite-table").exists():
        return f"run `npm ci` in {HERE} (scripts/setup.sh does)"
    return None


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    port: int
    scheme: str
    log: Path

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint={self.endpoint};"
        )

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(workdir: Path, *, tls: tuple[Path, Path] | None = None) -> Azurite:
    port = free_port()
    data = workdir / "azurite-data"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        str(HERE / "node_modules" / ".bin" / "azurite-table"),
        *("--tableHost", "127.0.0.1", "--tablePort", str(port), "--location", str(data)),
        "--disableTelemetry",  # Azurite sends its own usage data otherwise
        "--skipApiVersionCheck",  # the Python SDK may be newer than this Azurite
        "--silent",
    ]
    if tls:
        argv += ["--cert", str(tls[0]), "--key", str(tls[1]), "--oauth", "basic"]
    log = workdir / "azurite.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=HERE, stdout=out, stderr=subprocess.STDOUT)
    azurite = Azurite(process, port, "https" if tls else "http", log)
    _wait(azurite, verify=str(tls[0]) if tls else True)
    return azurite


def _wait(azurite: Azurite, verify: str | bool) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if azurite.process.poll() is not None:
            raise RuntimeError(f"azurite exited: {azurite.log.read_text(errors='replace')[-2000:]}")
        try:
            httpx.get(f"{azurite.endpoint}/Tables", verify=verify, timeout=2)
            return  # any answer (403 without a key) means it listens
        except httpx.HTTPError:
            time.sleep(0.2)
    azurite.stop()
    raise RuntimeError(f"azurite did not start in 60 s: {azurite.log.read_text(errors='replace')[-2000:]}")
