"""The real worker against the loopback Azure DICOM change-feed server and a real FHIR server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomcast.store import Store, make_engine
from tests import peers
from tests.integration.azure_worker import azure_env, sync_once
from tests.integration.sync_helpers import snapshot, versions
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.azure_dicom_data import dicom_json, generate_studies, uids

pytestmark = pytest.mark.integration
SYSTEM = "urn:oid:1.2.3.4.5"


@pytest.fixture
def azure() -> Iterator[AzureDicomServer]:
    with AzureDicomServer() as server:
        yield server


def _studies(snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for study in snap["ImagingStudy"].values():
        uid = next(i["value"] for i in study["identifier"] if i["system"] == "urn:dicom:uid")
        out[uid.removeprefix("urn:oid:")] = study
    return out


def _patient_ids(snap: dict[str, Any]) -> dict[str, str]:
    """PatientID -> Patient resource id."""
    return {i["value"]: p["id"] for p in snap["Patient"].values() for i in p["identifier"] if i.get("system") == SYSTEM}


@pytest.mark.parametrize("version", [1, 2])
def test_create_update_delete_lifecycle(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path, version: int
) -> None:
    instances = generate_studies(1, 4, seed=version)
    study_uid, _, _ = uids(instances[0])
    azure.store_all(instances)
    env = azure_env(f"{azure.url}/v{version}", fhir_server.url, tmp_path / "s.db")

    assert sync_once(env).ok
    snap = snapshot(fhir_server)
    study = _studies(snap)[study_uid]
    assert (study["numberOfSeries"], study["numberOfInstances"]) == (3, 4)
    old_patient = _patient_ids(snap)["PID000000"]
    assert study["subject"]["reference"] == f"Patient/{old_patient}"

    azure.update(study_uid, {"PatientName": "Renamed^Patient", "PatientID": "PID-NEW"})
    assert sync_once(env).ok
    snap = snapshot(fhir_server)
    patients = _patient_ids(snap)
    assert "PID000000" in patients  # the old Patient stays
    new_patient = snap["Patient"][patients["PID-NEW"]]
    assert new_patient["name"][0]["family"] == "Renamed"
    assert _studies(snap)[study_uid]["subject"]["reference"] == f"Patient/{patients['PID-NEW']}"
    assert _studies(snap)[study_uid]["numberOfInstances"] == 4

    first = instances[0]
    azure.delete_instance(*uids(first))
    assert sync_once(env).ok
    study = _studies(snapshot(fhir_server))[study_uid]
    assert study["numberOfInstances"] == 3
    remaining = {i["uid"] for s in study["series"] for i in s["instance"]}
    assert uids(first)[2] not in remaining

    azure.delete_study(study_uid)
    assert sync_once(env).ok
    snap = snapshot(fhir_server)
    assert study_uid not in _studies(snap)  # deleted: this source made it
    assert len(snap["Patient"]) == 2 and len(snap["Endpoint"]) == 1  # Patients and Endpoint stay


def test_gaps_of_one_and_a_thousand_sequences_lose_nothing(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    instances = generate_studies(3, 5, seed=7)
    azure.store_all(instances[:5])
    azure.skip_sequences(1)
    azure.store_all(instances[5:10])
    azure.skip_sequences(1000)
    azure.store_all(instances[10:])
    env = azure_env(f"{azure.url}/v1", fhir_server.url, tmp_path / "s.db", DicomCastWorker__BatchSize="4")

    report = sync_once(env)

    assert report.ok and report.caught_up and report.entries == 15
    assert sum(s["numberOfInstances"] for s in _studies(snapshot(fhir_server)).values()) == 15


@pytest.mark.parametrize("version", [1, 2])
def test_replay_from_zero_changes_nothing(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path, version: int
) -> None:
    azure.store_all(generate_studies(4, 3, seed=3))
    env = azure_env(f"{azure.url}/v{version}", fhir_server.url, tmp_path / "s.db")
    assert sync_once(env).ok
    before = snapshot(fhir_server)

    store = Store(make_engine(env["Store__ConnectionString"]))
    for row in store.checkpoints():
        store.set_checkpoint(row.source, None)
    assert sync_once(env).ok

    assert versions(snapshot(fhir_server)) == versions(before)


def test_restart_in_the_middle_of_a_v2_window(azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path) -> None:
    azure.store_all(generate_studies(6, 4, seed=11))  # 24 entries, pages of 5
    env = azure_env(
        f"{azure.url}/v2",
        fhir_server.url,
        tmp_path / "s.db",
        DicomCastWorker__BatchSize="5",
        DicomCastWorker__MaxBatchEntries="5",
    )
    stop = threading.Event()

    def stop_after_two(pages: int) -> None:
        if pages == 2:
            stop.set()

    first = sync_once(env, after_page=stop_after_two, stop_event=stop)
    second = sync_once(env)

    assert 0 < first.entries < 24 and not first.caught_up  # stopped mid-window
    assert second.ok and second.caught_up
    assert first.entries + second.entries == 24  # nothing skipped, nothing read twice
    assert sum(s["numberOfInstances"] for s in _studies(snapshot(fhir_server)).values()) == 24


def test_empty_feed_is_caught_up_and_writes_nothing(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    report = sync_once(azure_env(f"{azure.url}/v2", fhir_server.url, tmp_path / "s.db"))

    assert report.ok and report.caught_up and report.entries == 0
    assert all(not items for items in snapshot(fhir_server).values())


def test_entries_without_metadata_are_read_from_wado(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    instances = generate_studies(2, 2, seed=5)
    for instance in instances:
        azure.without_metadata.add(uids(instance)[2])
    azure.store_all(instances)

    assert sync_once(azure_env(f"{azure.url}/v2", fhir_server.url, tmp_path / "s.db")).ok

    assert sorted(s["numberOfInstances"] for s in _studies(snapshot(fhir_server)).values()) == [2, 2]


def test_two_partitions_into_one_fhir_server(fhir_server: peers.Peer, tmp_path: Path) -> None:
    with AzureDicomServer(partitions_enabled=True) as azure:
        same = generate_studies(1, 2, seed=9)
        azure.store_all(same, partition="alpha")
        azure.store_all(same, partition="beta")
        azure.store(generate_studies(1, 1, seed=10)[0] | dicom_json(Modality="MR"), partition="beta")

        assert sync_once(azure_env(f"{azure.url}/v2", fhir_server.url, tmp_path / "s.db")).ok

        snap = snapshot(fhir_server)
        addresses = sorted(e["address"] for e in snap["Endpoint"].values())
        assert addresses == [f"{azure.url}/v2/partitions/alpha", f"{azure.url}/v2/partitions/beta"]
        sources = sorted(s["meta"]["source"] for s in snap["ImagingStudy"].values())
        assert sources == sorted([addresses[0], addresses[1], addresses[1]])  # same UID kept apart per partition


@pytest.mark.parametrize(("max_bytes", "batches"), [(None, 2), ("65536", 5)])
def test_a_batch_is_bounded_by_the_bytes_of_metadata_it_holds(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path, max_bytes: str | None, batches: int
) -> None:
    """Instances carrying about 20 KB of metadata each (a CT image's is 12 KB): pages of 5 hold about
    100 KB, so with MaxBatchBytes 65536 every batch is one page, where MaxBatchEntries alone makes
    batches of 20. Nothing is lost either way."""
    padding = {"00290010": {"vr": "LO", "Value": ["PADDING"]}, "00291010": {"vr": "UT", "Value": ["x" * 20_000]}}
    azure.store_all([{**instance, **padding} for instance in generate_studies(3, 8, seed=21)])  # 24 entries
    bound = {"DicomCastWorker__MaxBatchBytes": max_bytes} if max_bytes else {}
    env = azure_env(
        f"{azure.url}/v2",
        fhir_server.url,
        tmp_path / "s.db",
        DicomCastWorker__BatchSize="5",
        DicomCastWorker__MaxBatchEntries="20",
        **bound,
    )

    report = sync_once(env)

    assert report.ok and report.caught_up and report.entries == 24
    assert report.pages == batches
    assert sorted(s["numberOfInstances"] for s in _studies(snapshot(fhir_server)).values()) == [8, 8, 8]
