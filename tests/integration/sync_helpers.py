"""Helpers for end-to-end tests: run the real `dicomcast` command, read back what FHIR holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.fault_entry import HOLD, MARKER, UNEXPECTED
from tests.peers import Peer

ROOT = Path(__file__).resolve().parents[2]

KINDS = ("ImagingStudy", "Patient", "Endpoint", "Observation")


def orthanc_env(orthanc: Peer, fhir: Peer, store: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.lower().startswith(("dicomweb__", "fhir__", "store__", "keyvault__"))
    }
    env.update(
        {
            "DicomWeb__Endpoint": orthanc.url,
            "DicomWeb__ServerType": "Orthanc",
            "DicomWeb__Authentication__Enabled": "true",
            "DicomWeb__Authentication__AuthenticationType": "Basic",
            "DicomWeb__Authentication__BasicCredential__Username": orthanc.extra["username"],
            "DicomWeb__Authentication__BasicCredential__Password": orthanc.extra["password"],
            "Fhir__Endpoint": fhir.url,
            "Store__ConnectionString": f"sqlite:///{store}",
            "Patient__PatientSystemId": "urn:oid:1.2.3.4.5",
            "DicomCastWorker__PollInterval": "1s",
            "Logging__Format": "json",
            **extra,
        }
    )
    return env


def _command(args: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """`python -m dicomcast ARGS`, or `python -m tests.fault_entry ARGS` (the same command with faults
    injected) when `env` asks for a fault; with its environment."""
    if HOLD not in env and UNEXPECTED not in env:
        return [sys.executable, "-m", "dicomcast", *args], env
    importable = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return [sys.executable, "-m", "tests.fault_entry", *args], {**env, "PYTHONPATH": importable}


def dicomcast(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    command, env = _command(args, env)
    return subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_dicomcast(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command, env = _command(args, env)
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def run_and_kill_at(env: dict[str, str], log: Path, point: str, nth: int, hang_guard_s: float = 600) -> str:
    """`dicomcast run --once` held (tests/fault_entry.py) the `nth` time it reaches `point`, then killed
    from outside with SIGKILL: a crash at a known moment of the sync, on a fast or a loaded machine.
    Returns `killed at <point>`, or `finished (<exit code>)` when the run ended before the point."""
    command, held_env = _command(["run", "--once"], {**env, HOLD: f"{point}:{nth}", "PYTHONUNBUFFERED": "1"})
    process = subprocess.Popen(
        command,
        env=held_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    held = threading.Event()

    def pump() -> None:  # read every line (a full pipe would stall the worker), watch for the marker
        assert process.stdout is not None
        with log.open("ab") as out:
            for line in process.stdout:
                out.write(line)
                if MARKER.encode() in line:
                    held.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + hang_guard_s  # against hanging; no assertion on how long it took
    while not held.is_set() and process.poll() is None and time.monotonic() < deadline:
        held.wait(0.5)
    if not held.is_set() and process.poll() is None:
        process.kill()
        process.wait()
        raise AssertionError(f"the worker neither reached {point} #{nth} nor exited; see {log}")
    if held.is_set():
        process.kill()  # kill -9 while the worker stands at the point
    process.wait()
    reader.join(timeout=60)
    return f"killed at {point}" if held.is_set() else f"finished ({process.returncode})"


def fetch_all(fhir: Peer, kind: str, token: str | None = None) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    url: str | None = f"{fhir.url}/{kind}?_count=200"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(timeout=30, headers=headers) as client:
        while url:
            bundle = client.get(url).json()
            resources += [
                e["resource"] for e in bundle.get("entry", []) if e.get("resource", {}).get("resourceType") == kind
            ]
            url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
    return resources


def snapshot(fhir: Peer, token: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """kind -> id -> resource, for every kind dicomcast writes (`token`: a server that wants one)."""
    return {kind: {r["id"]: r for r in fetch_all(fhir, kind, token)} for kind in KINDS}


def content(snap: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, str]]:
    """The snapshot without server-managed meta (versions, times): what must match across runs."""

    def strip(resource: dict[str, Any]) -> str:
        body = {k: v for k, v in resource.items() if k != "meta"}
        body["meta.source"] = resource.get("meta", {}).get("source")
        return json.dumps(body, sort_keys=True)

    return {kind: {rid: strip(r) for rid, r in items.items()} for kind, items in snap.items()}


def versions(snap: dict[str, dict[str, dict[str, Any]]]) -> dict[str, str]:
    return {f"{kind}/{rid}": r["meta"]["versionId"] for kind, items in snap.items() for rid, r in items.items()}


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines
