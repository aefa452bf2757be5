"""The switch-over from DICOM Cast end to end (issue 13): a DICOM Cast deployment as it is left
behind, then one `dicomcast run --once` with nothing changed but the image.

- the loopback Key Vault holds exactly DICOM Cast's secret set (version-less `DicomWeb--Endpoint`,
  `TableStore--ConnectionString`, managed identity for both servers, the instrumentation key);
- Azurite holds DICOM Cast's sync-state row;
- the FHIR server (sekmet, real) was filled by the DICOM Cast-pattern writer up to that checkpoint,
  with the managed identity's token, as were the change feed's reads;
- both servers accept only their own managed-identity token.
Asserted: everything exact (new and touched resources as dicomcast alone writes them), 0 duplicates,
no entry at or before the imported checkpoint read again, untouched resources unchanged (same
versionId), DICOM Cast's tables not written, no token, key or PHI in the output or the telemetry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import peers
from tests.integration.azure_worker import azure_env
from tests.integration.fhir_checks import by_uid, duplicates
from tests.integration.sync_helpers import dicomcast, snapshot
from tests.servers import fixtures
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.azure_dicom_data import generate_studies, uids
from tests.servers.dicomcast_writer import DicomCastWriter
from tests.servers.keyvault import FakeKeyVault
from tests.servers.mi_token import MiTokenServer
from tests.unit.mapping.builders import dose_sr, instance

pytestmark = pytest.mark.integration

# the identity fakes' fixtures, used by name
key_vault = fixtures.key_vault
managed_identity = fixtures.managed_identity
tls_cert = fixtures.tls_cert

DICOM_RESOURCE = "https://dicom.healthcareapis.azure.com"
DOSE_STUDY = "1.2.826.0.1.3680043.8.498.91"
INSTRUMENTATION_KEY = "00000000-0000-4000-8000-00000000c0de"


@pytest.fixture
def fhir() -> Iterator[peers.Peer]:
    peer = peers.start_fhir(token="fhir-mi-token")
    yield peer
    peer.stop()


@pytest.fixture
def azure() -> Iterator[AzureDicomServer]:
    with AzureDicomServer(token="dicom-mi-token") as server:
        yield server


@pytest.fixture
def tokens(managed_identity: MiTokenServer, fhir: peers.Peer) -> dict[str, str]:
    """The managed identity's token per resource: each server accepts only its own."""
    by_resource = {DICOM_RESOURCE: "dicom-mi-token", fhir.url: "fhir-mi-token"}
    issue = managed_identity.issue

    def per_resource(resource: str, client_id: str | None) -> str:
        managed_identity.queue.insert(0, by_resource.setdefault(resource, f"other-mi-token-{len(by_resource)}"))
        return issue(resource, client_id)

    managed_identity.issue = per_resource  # type: ignore[method-assign]
    return by_resource


def dose_report(patient_id: str) -> dict[str, Any]:
    identity = instance(9, 1, study=DOSE_STUDY, patient_id=patient_id)
    return dose_sr(series=9, number=1) | {
        k: v for k, v in identity.items() if k.startswith("002000") or k in ("00080018", "00100020")
    }


def phi_of(instances: list[dict[str, Any]]) -> set[str]:
    """Patient names and ids in the data: none may appear in logs or telemetry."""
    found: set[str] = set()
    for data in instances:
        for tag in ("00100010", "00100020"):
            for value in (data.get(tag) or {}).get("Value") or []:
                found.add(value["Alphabetic"] if isinstance(value, dict) else str(value))
    return {v for v in found if len(v) >= 5}


def normalized(resource: dict[str, Any], snap: dict[str, Any]) -> dict[str, Any]:
    """A resource without what differs between two FHIR servers: ids, meta, and references
    (a Patient reference becomes the Patient's identifier value, an Endpoint's its address)."""

    def reference(value: str) -> str:
        kind, _, rid = value.partition("/")
        target = snap.get(kind, {}).get(rid)
        if kind == "Patient" and target:
            return f"Patient|{target['identifier'][0]['value']}"
        if kind == "Endpoint" and target:
            return f"Endpoint|{target['address']}"
        if kind in ("ImagingStudy", "Observation") and target:  # named by their DICOM UIDs
            return f"{kind}|{target['identifier'][0]['value']}"
        return value if kind not in snap else f"{kind}|missing"

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: reference(v) if k == "reference" else walk(v) for k, v in node.items() if k not in ("id", "meta")
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return dict(walk(resource))


def test_switch_over_from_dicom_cast(
    azure: AzureDicomServer,
    fhir: peers.Peer,
    key_vault: FakeKeyVault,
    tokens: dict[str, str],
    tmp_path: Path,
) -> None:
    from tests.integration.dicomcast_tables import tables_and_rows, write_sync_state
    from tests.servers import azurite
    from tests.servers.app_insights import FakeIngestion

    why = azurite.available()
    if why:
        pytest.skip(f"Azurite unavailable: {why}")
    # The feed: four studies of three instances and a dose study (CT + X-Ray dose SR). DICOM Cast
    # synced the first three and the dose study; study 4 and the rest come after its checkpoint.
    studies = generate_studies(4, 3, seed=41)
    early, late_study = studies[:9], studies[9:]
    dose_ct, dose = instance(1, 1, study=DOSE_STUDY, patient_id="PAT-DOSE-1"), dose_report("PAT-DOSE-1")
    checkpoint = azure.store_all([*early, dose_ct, dose])[-1]
    writer = DicomCastWriter(fhir.url, azure.url, token="fhir-mi-token")
    try:
        assert writer.sync_feed(azure.url, checkpoint, dicom_token="dicom-mi-token") == checkpoint
    finally:
        writer.close()
    touched_uid, untouched_uids = uids(early[0])[0], {uids(i)[0] for i in early[3:]}
    new_instance = dict(early[0]) | {"00080018": {"vr": "UI", "Value": [f"{uids(early[0])[2]}.7"]}}
    azure.store_all([new_instance, *late_study, dose])  # a new image, a new study, the dose SR again
    before = snapshot(fhir, "fhir-mi-token")
    assert duplicates(before) == {}

    with azurite.start(tmp_path / "tables") as tables, FakeIngestion() as ingestion:
        write_sync_state(tables.connection_string, checkpoint)
        tables_before = tables_and_rows(tables.connection_string)
        for name, value in {  # exactly a DICOM Cast vault (its ARM template and guide)
            "DicomWeb--Endpoint": azure.url,
            "DicomWeb--Authentication--Enabled": "true",
            "DicomWeb--Authentication--AuthenticationType": "ManagedIdentity",
            "DicomWeb--Authentication--ManagedIdentityCredential--Resource": DICOM_RESOURCE,
            "Fhir--Endpoint": fhir.url,
            "Fhir--Authentication--Enabled": "true",
            "Fhir--Authentication--AuthenticationType": "ManagedIdentity",
            "Fhir--Authentication--ManagedIdentityCredential--Resource": fhir.url,
            "TableStore--ConnectionString": tables.connection_string,
            "ApplicationInsights--InstrumentationKey": INSTRUMENTATION_KEY,
        }.items():
            key_vault.set(name, value)
        env = {k: v for k, v in os.environ.items() if "__" not in k and not k.startswith("APPLICATIONINSIGHTS")}
        env |= {
            "KeyVault__Endpoint": key_vault.url,
            "Store__ConnectionString": f"sqlite:///{tmp_path / 'store.db'}",
            "Logging__Format": "json",
            # The key alone means Microsoft's ingestion endpoint; the test keeps it on loopback with
            # Azure's standard variable (same key) and turns off the SDK's own statistics.
            "APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.connection_string,
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
        }
        served = len(azure.served)  # the DICOM Cast-pattern writer's reads come before
        result = dicomcast(["run", "--once"], env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        tables_after = tables_and_rows(tables.connection_string)
    after = snapshot(fhir, "fhir-mi-token")
    output = result.stdout + result.stderr

    # No entry at or before DICOM Cast's checkpoint read again; everything after it read once.
    read = [sequence for _, metadata, sequences in azure.served[served:] if metadata for sequence in sequences]
    assert read and min(read) == checkpoint + 1, read
    assert sorted(set(read)) == list(range(checkpoint + 1, checkpoint + 6))
    assert output.count("checkpoint carried over from DICOM Cast") == 1
    assert tables_after == tables_before  # DICOM Cast's tables are never written

    # 0 duplicates; what DICOM Cast wrote is adopted in place.
    assert duplicates(after) == {}
    assert set(before["Endpoint"]) == set(after["Endpoint"])
    assert set(before["ImagingStudy"]) <= set(after["ImagingStudy"])
    assert len(after["ImagingStudy"]) == len(before["ImagingStudy"]) + 1
    assert set(before["Patient"]) <= set(after["Patient"])
    assert len(after["Patient"]) == len(before["Patient"]) + 1

    # Untouched: not written (same versionId and content).
    studies_before, studies_after = by_uid(before), by_uid(after)
    for uid in untouched_uids:
        assert studies_after[uid] == studies_before[uid]
    untouched_patients = {studies_before[uid]["subject"]["reference"].split("/")[1] for uid in untouched_uids}
    for pid in untouched_patients:
        assert after["Patient"][pid] == before["Patient"][pid]

    # Exact: the new study, and the touched study's new instance, as dicomcast alone writes them.
    reference = reference_run(azure, tmp_path)
    new_uid = uids(late_study[0])[0]
    assert normalized(studies_after[new_uid], after) == normalized(by_uid(reference)[new_uid], reference)
    touched = studies_after[touched_uid]
    assert touched["id"] == studies_before[touched_uid]["id"] and touched["meta"]["source"] == f"{azure.url}/v1"
    mine = {i["uid"]: i for s in touched["series"] for i in s["instance"]}
    theirs = {i["uid"]: i for s in by_uid(reference)[touched_uid]["series"] for i in s["instance"]}
    assert mine[uids(new_instance)[2]] == theirs[uids(new_instance)[2]]
    assert touched["numberOfInstances"] == 4 == len(mine)
    (endpoint,) = after["Endpoint"].values()
    (expected_endpoint,) = reference["Endpoint"].values()
    assert normalized(endpoint, after) == normalized(expected_endpoint, reference)  # DICOM Cast's, renamed
    new_patient = studies_after[new_uid]["subject"]["reference"].split("/")[1]
    expected_patient = by_uid(reference)[new_uid]["subject"]["reference"].split("/")[1]
    assert normalized(after["Patient"][new_patient], after) == normalized(
        reference["Patient"][expected_patient], reference
    )
    # DICOM Cast's 3 dose Observations replaced by exactly what dicomcast alone writes.
    assert sorted(json.dumps(normalized(o, after), sort_keys=True) for o in after["Observation"].values()) == sorted(
        json.dumps(normalized(o, reference), sort_keys=True) for o in reference["Observation"].values()
    )
    assert len(after["Observation"]) == 3

    counts = {kind: f"{len(before[kind])}->{len(after[kind])}" for kind in before}
    print(  # the figures for the record (pytest -s)
        f"switch-over: imported checkpoint {checkpoint}, read {min(read)}-{max(read)} ({len(read)} entries), "
        f"resources {counts}, duplicates {len(duplicates(after))}, untouched studies unchanged {len(untouched_uids)}"
    )

    # Nothing secret or personal in the output or in what went to Application Insights.
    secrets = {*tokens.values(), azurite.ACCOUNT_KEY, "dicom-mi-token", "fhir-mi-token"}
    phi = phi_of([*early, *late_study, dose_ct])
    telemetry = "\n".join(ingestion.bodies)
    assert ingestion.envelopes, "no telemetry arrived"
    for text in (output, telemetry):
        assert not [s for s in secrets if s in text]
        assert not [p for p in phi if p in text]


def reference_run(azure: AzureDicomServer, tmp_path: Path) -> dict[str, Any]:
    """dicomcast alone, from the feed's start, into a fresh FHIR server: what 'exact' means."""
    peer = peers.start_fhir()
    try:
        env = {k: v for k, v in os.environ.items() if "__" not in k and not k.startswith("APPLICATIONINSIGHTS")}
        env |= azure_env(
            f"{azure.url}/v1",
            peer.url,
            tmp_path / "reference.db",
            DicomWeb__Authentication__Enabled="true",
            DicomWeb__Authentication__AuthenticationType="ManagedIdentity",
            DicomWeb__Authentication__ManagedIdentityCredential__Resource=DICOM_RESOURCE,
        )
        del env["Patient__PatientSystemId"]  # DICOM Cast's default: none
        result = dicomcast(["run", "--once"], env)
        assert result.returncode == 0, result.stderr[-3000:]
        return snapshot(peer)
    finally:
        peer.stop()
