"""A wrong endpoint or credential is one clear line and a non-zero exit from `run --once` (and `run`
for invalid settings), no traceback. `run` itself waits out unreachable or refusing servers
(test_stay_up.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests import peers
from tests.integration.sync_helpers import dicomcast, json_lines, orthanc_env

pytestmark = pytest.mark.integration


def _only_error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The operator's error: logs are JSON here (Logging__Format, or auto off a terminal), so it is
    one JSON line on stdout with the problems, and nothing on stderr."""
    assert "Traceback" not in result.stdout + result.stderr and result.stderr == ""
    [error] = [line for line in json_lines(result.stdout) if "exit_code" in line]
    assert error["exit_code"] == result.returncode
    return list(error.get("problems") or [error["event"]])


def test_wrong_orthanc_password(orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path) -> None:
    env = orthanc_env(orthanc, fhir_server, tmp_path / "s.db")
    env["DicomWeb__Authentication__BasicCredential__Password"] = "not-the-password"

    result = dicomcast(["run", "--once"], env, timeout=60)

    assert result.returncode == 77
    lines = _only_error_lines(result)
    assert len(lines) == 1 and "401" in lines[0] and "BasicCredential:Password" in lines[0]
    assert "DicomWeb:Authentication" in lines[0]
    assert "not-the-password" not in result.stdout + result.stderr


def test_fhir_server_not_there(orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path) -> None:
    env = orthanc_env(orthanc, fhir_server, tmp_path / "s.db")
    env["Fhir__Endpoint"] = f"http://127.0.0.1:{peers.free_port()}/fhir"

    result = dicomcast(["run", "--once"], env, timeout=60)

    assert result.returncode == 69
    lines = _only_error_lines(result)
    assert len(lines) == 1 and "FHIR server" in lines[0] and "/metadata" in lines[0]


def test_azure_endpoint_with_an_unknown_version(fhir_server: peers.Peer, tmp_path: Path) -> None:
    """(A version-less endpoint is v1, as in DICOM Cast: tests/integration/test_switchover_checkpoint.py.)"""
    env = {
        "DicomWeb__Endpoint": "https://example-dicom.dicom.azurehealthcareapis.com/v3",
        "Fhir__Endpoint": fhir_server.url,
        "Store__ConnectionString": f"sqlite:///{tmp_path / 's.db'}",
        "PATH": "/usr/bin:/bin",
    }

    result = dicomcast(["run"], env, timeout=60)  # refused before any request to that host

    assert result.returncode == 78
    assert any("https://example-dicom.dicom.azurehealthcareapis.com/v2" in line for line in _only_error_lines(result))


def test_invalid_settings_one_line_each_with_env_and_secret_names(tmp_path: Path) -> None:
    env = {"DicomCastWorker__PollInterval": "soon", "DicomCastWorker__BatchSize": "0", "PATH": "/usr/bin:/bin"}

    result = dicomcast(["config"], env, timeout=60)

    assert result.returncode == 78
    lines = _only_error_lines(result)
    assert any("DicomCastWorker__PollInterval" in line and "DicomCastWorker--PollInterval" in line for line in lines)
    assert any("DicomCastWorker__BatchSize" in line for line in lines)


def test_run_exits_78_on_invalid_settings_even_while_servers_are_down(tmp_path: Path) -> None:
    env = {
        "DicomWeb__Endpoint": "https://example-dicom.dicom.azurehealthcareapis.com/v3",
        "Fhir__Endpoint": f"http://127.0.0.1:{peers.free_port()}/fhir",  # nothing listens: not waited for
        "Store__ConnectionString": f"sqlite:///{tmp_path / 's.db'}",
        "PATH": "/usr/bin:/bin",
    }
    assert dicomcast(["run"], env, timeout=60).returncode == 78

    env["DicomWeb__Endpoint"] = "https://example-dicom.dicom.azurehealthcareapis.com/v2"
    env["Store__ConnectionString"] = "mongodb://127.0.0.1/dicomcast"
    result = dicomcast(["run"], env, timeout=60)
    assert result.returncode == 78
    assert any("Store__ConnectionString" in line for line in _only_error_lines(result))
