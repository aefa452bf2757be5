"""Azure Monitor telemetry from a real `dicomcast run --once`: the real azure-monitor-opentelemetry
exporter posts to a loopback ingestion endpoint. Spans (page, study), HTTP dependencies, metrics and
logs arrive; no patient name, patient id or token is in any of them; without the setting nothing is
sent and the SDK is not even imported. A socket audit of the process proves nothing left loopback."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import peers
from tests.integration.sync_helpers import dicomcast
from tests.servers.app_insights import INSTRUMENTATION_KEY, FakeIngestion
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.azure_dicom_data import generate_studies, uids
from tests.servers.mi_token import IDENTITY_HEADER, MiTokenServer

pytestmark = pytest.mark.integration
AUDIT = Path(__file__).resolve().parent / "audit"
TOKEN = "mi-secret-token-7f3a9c"


@pytest.fixture
def ingestion() -> Iterator[FakeIngestion]:
    with FakeIngestion() as server:
        yield server


@pytest.fixture
def identity() -> Iterator[MiTokenServer]:
    with MiTokenServer() as server:
        server.queue = [TOKEN] * 20
        yield server


def _phi(instances: list[dict[str, Any]]) -> set[str]:
    """Patient names (and their parts), ids and birth dates of the test data."""
    found: set[str] = set()
    for instance in instances:
        name = instance["00100010"]["Value"][0]["Alphabetic"]
        found |= {name, *name.split("^"), instance["00100020"]["Value"][0], instance["00100030"]["Value"][0]}
    return found


def _env(
    azure: AzureDicomServer, fhir: peers.Peer, identity: MiTokenServer, tmp_path: Path, **extra: str
) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("APPLICATIONINSIGHTS", "OTEL_", "IDENTITY_", "MSI_"))
    }
    return {
        **keep,
        "DicomWeb__Endpoint": azure.url,  # version-less: v1, as DICOM Cast
        "DicomWeb__Authentication__Enabled": "true",
        "DicomWeb__Authentication__AuthenticationType": "ManagedIdentity",
        "DicomWeb__Authentication__ManagedIdentityCredential__Resource": "https://dicom.healthcareapis.azure.com",
        "IDENTITY_ENDPOINT": identity.endpoint,
        "IDENTITY_HEADER": IDENTITY_HEADER,
        "Fhir__Endpoint": fhir.url,
        "Store__ConnectionString": f"sqlite:///{tmp_path / 's.db'}",
        "Logging__Format": "json",
        "PYTHONPATH": os.pathsep.join([str(AUDIT), os.environ.get("PYTHONPATH", "")]),
        "DICOMCAST_SOCKET_AUDIT": str(tmp_path / "sockets.jsonl"),
        **extra,
    }


def _audit(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "sockets.jsonl").read_text().splitlines()]


def _assert_loopback_only(records: list[dict[str, Any]]) -> None:
    for record in records:
        if "connect" in record and isinstance(record["connect"], list):
            assert record["connect"][0] in ("127.0.0.1", "::1"), record
        if "lookup" in record:
            assert record["lookup"] in ("127.0.0.1", "localhost", "::1"), record


def test_run_once_sends_spans_dependencies_metrics_and_logs_without_phi(
    ingestion: FakeIngestion, identity: MiTokenServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    instances = generate_studies(2, 3, seed=41)
    with AzureDicomServer(token=TOKEN) as azure:
        azure.store_all(instances)
        env = _env(
            azure,
            fhir_server,
            identity,
            tmp_path,
            APPLICATIONINSIGHTS_CONNECTION_STRING=ingestion.connection_string,
            APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",  # the SDK's own statistics to Microsoft
            APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED="true",  # the SDK's settings fetch from Microsoft
        )
        result = dicomcast(["run", "--once"], env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    assert ingestion.envelopes, f"nothing arrived; paths {ingestion.paths}"
    assert all(e.get("iKey") == INSTRUMENTATION_KEY for e in ingestion.envelopes)
    names = [d.get("name") for d in ingestion.of_type("RemoteDependency")]
    assert names.count("dicomcast.page") >= 1
    studies = [d for d in ingestion.of_type("RemoteDependency") if d.get("name") == "dicomcast.study"]
    assert {d["properties"]["dicomcast.study_uid"] for d in studies} == {uids(i)[0] for i in instances}
    assert all(d["properties"]["dicomcast.written"] == "True" for d in studies)
    http = [d for d in ingestion.of_type("RemoteDependency") if d.get("type") == "HTTP"]
    fhir_host = fhir_server.url.split("//")[1].split("/")[0]
    assert any(d.get("target") == fhir_host and "/fhir" in str(d.get("data")) for d in http), http[:2]
    assert all("?" not in str(d.get("data", "")) for d in http)  # no query strings (identifier searches)
    metrics = {m["name"] for d in ingestion.of_type("Metric") for m in d["metrics"]}
    assert {"dicomcast_entries_total", "dicomcast_checkpoint_sequence", "dicomcast_fhir_requests_total"} <= metrics
    messages = [d.get("message") for d in ingestion.of_type("Message")]
    assert "page" in messages and "study" in messages

    everything = "\n".join(ingestion.bodies)
    for secret in (*_phi(instances), TOKEN):
        assert secret not in everything, f"{secret!r} reached Application Insights"
    assert not [p for p in ingestion.paths if "/v2.1/track" not in p]  # no live metrics, no other channel
    records = _audit(tmp_path)
    _assert_loopback_only(records)
    assert {"azure_monitor_imported": True} in records


def test_without_the_setting_nothing_is_sent_and_the_sdk_is_not_loaded(
    ingestion: FakeIngestion, identity: MiTokenServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    with AzureDicomServer(token=TOKEN) as azure:
        azure.store_all(generate_studies(1, 2, seed=42))
        result = dicomcast(["run", "--once"], _env(azure, fhir_server, identity, tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert ingestion.paths == []
    records = _audit(tmp_path)
    _assert_loopback_only(records)
    assert {"azure_monitor_imported": False} in records
