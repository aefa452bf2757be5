"""Studies interleaved across batches (several modalities storing at once) are each written once,
against the Azure DICOM test server and the real sekmet server (worker/study_cut.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dicomcast.store import Store
from tests import peers
from tests.integration.azure_worker import azure_env, sync_once
from tests.integration.sync_helpers import snapshot
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.azure_dicom_data import dicom_json, generate_studies, uids

pytestmark = pytest.mark.integration

LEAD_IN = 10  # one-instance studies filling the first page: no checkpoint stands before it
STUDIES, INSTANCES = 4, 15


def _interleaved() -> list[dict[str, object]]:
    lead_in = generate_studies(LEAD_IN, 1, seed=41)
    studies = [
        [{**i, **dicom_json(PatientID=f"CUT{n}")} for i in generate_studies(1, INSTANCES, seed=42 + n)]
        for n in range(STUDIES)
    ]
    return lead_in + [study[i] for i in range(INSTANCES) for study in studies]  # round robin


def test_studies_that_cross_batches_are_written_once_each_and_whole(fhir_server: peers.Peer, tmp_path: Path) -> None:
    instances = _interleaved()
    with AzureDicomServer() as azure:
        azure.store_all(instances)
        # Pages of 10, batches of 20: each interleaved study crosses three batches.
        env = azure_env(
            f"{azure.url}/v2",
            fhir_server.url,
            tmp_path / "s.db",
            DicomCastWorker__BatchSize="10",
            DicomCastWorker__MaxBatchEntries="20",
        )
        assert sync_once(env).ok

    snap = snapshot(fhir_server)
    expected: dict[str, int] = {}
    for instance in instances:
        study_uid = uids(instance)[0]
        expected[study_uid] = expected.get(study_uid, 0) + 1
    landed = {
        next(i["value"] for i in s["identifier"] if i["system"] == "urn:dicom:uid").removeprefix("urn:oid:"): s
        for s in snap["ImagingStudy"].values()
    }
    assert {uid: s["numberOfInstances"] for uid, s in landed.items()} == expected
    assert {s["meta"]["versionId"] for s in landed.values()} == {"1"}  # none written twice
    assert {p["meta"]["versionId"] for p in snap["Patient"].values()} == {"1"}
    store = Store.open_existing(f"sqlite:///{tmp_path / 's.db'}")
    try:
        (checkpoint,) = store.checkpoints()
        assert json.dumps(checkpoint.cursor).startswith(f'"{len(instances)}@')  # caught up: exact
    finally:
        store.close()
