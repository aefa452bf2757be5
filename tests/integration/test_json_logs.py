"""With Logging__Format=json every line dicomcast writes is JSON on stdout: its own events, library
messages (stdlib logging: the Azure SDK here), the operator's error line and unexpected errors
(type and stack frames, never local variables)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests import peers
from tests.integration import bulk_data
from tests.integration.sync_helpers import dicomcast, orthanc_env

pytestmark = pytest.mark.integration


def _all_json(result: Any) -> list[dict[str, Any]]:
    assert result.stderr == "", result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # raises on any line that is not JSON
    assert lines and all(isinstance(line, dict) and "event" in line and "level" in line for line in lines)
    return lines


def _env(orthanc: peers.Peer, fhir: peers.Peer, tmp_path: Path, **extra: str) -> dict[str, str]:
    return orthanc_env(orthanc, fhir, tmp_path / "store.db", Logging__Format="json", **extra)


def test_a_successful_run_once_is_json(orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path) -> None:
    bulk_data.upload(orthanc, bulk_data.make_bulk("json", 2, 2).instances)
    result = dicomcast(["run", "--once"], _env(orthanc, fhir_server, tmp_path))
    assert result.returncode == 0
    events = {line["event"] for line in _all_json(result)}
    assert {"fhir server", "page", "caught up"} <= events


def test_a_configuration_error_is_one_json_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "Logging__Format": "json", "DicomCastWorker__PollInterval": "soon"}
    result = dicomcast(["run"], env, timeout=60)
    assert result.returncode == 78
    [line] = _all_json(result)
    assert line["level"] == "error" and line["event"] == "configuration error" and line["exit_code"] == 78
    assert any("DicomCastWorker__PollInterval" in problem for problem in line["problems"])


def test_an_unexpected_error_is_json_with_type_and_stack_without_locals(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    result = dicomcast(["run"], _env(orthanc, fhir_server, tmp_path, DICOMCAST_FAULT_UNEXPECTED="1"), timeout=60)
    assert result.returncode == 1
    [line] = [line for line in _all_json(result) if line["level"] == "error"]
    assert line["event"] == "unexpected error" and line["error_class"] == "RuntimeError"
    [exception] = line["exception"]
    assert exception["exc_type"] == "RuntimeError"
    frames = exception["frames"]
    assert frames and frames[-1]["name"] == "unexpected_at_start"
    assert all(set(frame) <= {"filename", "lineno", "name", "line"} for frame in frames)  # no "locals"
    assert peers.ORTHANC_PASSWORD not in result.stdout


def test_library_warnings_and_the_final_error_are_json(tmp_path: Path) -> None:
    refused = f"http://127.0.0.1:{peers.free_port()}"  # nothing listens: the Azure SDK logs a warning
    env = {
        "PATH": "/usr/bin:/bin",
        "Logging__Format": "json",
        "DicomWeb__Endpoint": f"{refused}/v2",
        "Fhir__Endpoint": f"{refused}/fhir",
        "Fhir__Authentication__Enabled": "true",
        "Fhir__Authentication__AuthenticationType": "ManagedIdentity",
        "Fhir__Authentication__ManagedIdentityCredential__Resource": "https://fhir.example",
        "IDENTITY_ENDPOINT": f"{refused}/token",
        "IDENTITY_HEADER": "header",
        "Store__ConnectionString": f"sqlite:///{tmp_path / 'store.db'}",
    }
    result = dicomcast(["run", "--once"], env, timeout=120)
    assert result.returncode == 77
    lines = _all_json(result)
    library = [line for line in lines if line.get("logger", "").startswith("azure.")]
    assert library and all(line["level"] == "warning" for line in library)
    assert lines[-1]["level"] == "error" and lines[-1]["error_class"] == "AuthError" and lines[-1]["exit_code"] == 77
