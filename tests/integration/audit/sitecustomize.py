"""Loaded by every Python process started with this folder on PYTHONPATH (the telemetry test's
`dicomcast run --once`): writes each socket connect and name lookup to $DICOMCAST_SOCKET_AUDIT,
and at exit which telemetry modules were imported, so the test can prove nothing left loopback."""

import atexit
import json
import os
import sys

_PATH = os.environ.get("DICOMCAST_SOCKET_AUDIT")


def _write(record: dict) -> None:
    with open(_PATH, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def _hook(event: str, args: tuple) -> None:
    if event == "socket.connect":
        address = args[1]
        _write({"connect": list(address) if isinstance(address, tuple) else str(address)})
    elif event == "socket.getaddrinfo":
        _write({"lookup": str(args[0])})


def _modules() -> None:
    _write({"azure_monitor_imported": "azure.monitor.opentelemetry" in sys.modules})


if _PATH:
    sys.addaudithook(_hook)
    atexit.register(_modules)
