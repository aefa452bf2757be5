"""Core sync end to end: real Orthanc change log -> real FHIR R4 server, through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from tests import peers
from tests.integration.sync_helpers import (
    content,
    dicomcast,
    json_lines,
    orthanc_env,
    run_and_kill_at,
    snapshot,
    start_dicomcast,
    versions,
)
from tests.sample_data import bundled, copy_instance, expected_counts, sample_files

pytestmark = pytest.mark.integration


def _study_counts(snap: dict) -> dict[str, tuple[int, int]]:
    counts = {}
    for study in snap["ImagingStudy"].values():
        uid = next(i["value"] for i in study["identifier"] if i["system"] == "urn:dicom:uid").removeprefix("urn:oid:")
        counts[uid] = (study["numberOfSeries"], study["numberOfInstances"])
    return counts


def test_sync_lands_every_study_patient_and_one_endpoint(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    files = sample_files(tmp_path / "dicom")
    peers.upload_to_orthanc(orthanc, files)
    env = orthanc_env(orthanc, fhir_server, tmp_path / "store.db")

    result = dicomcast(["run", "--once"], env)

    assert result.returncode == 0, result.stdout + result.stderr
    snap = snapshot(fhir_server)
    assert _study_counts(snap) == expected_counts(files)
    patient_ids = {pydicom.dcmread(f, stop_before_pixels=True).PatientID for f in files}
    primary = [
        i["value"] for p in snap["Patient"].values() for i in p["identifier"] if i.get("system") == "urn:oid:1.2.3.4.5"
    ]
    assert sorted(primary) == sorted(patient_ids)  # one Patient per PatientID, none twice
    assert len(snap["Endpoint"]) == 1
    endpoint = next(iter(snap["Endpoint"].values()))
    assert endpoint["address"] == f"{orthanc.url}/dicom-web"
    for study in snap["ImagingStudy"].values():
        assert study["subject"]["reference"].startswith("Patient/")
        assert study["subject"]["reference"].removeprefix("Patient/") in snap["Patient"]
        assert study["endpoint"] == [{"reference": f"Endpoint/{endpoint['id']}"}]
    lines = json_lines(result.stdout)
    assert any(line.get("event") == "page" for line in lines)
    assert sum(1 for line in lines if line.get("event") == "study") == len(expected_counts(files))
    for f in files:  # no PHI in the logs: patient names and ids never appear
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        for phi in (str(ds.PatientName), str(ds.PatientID)):
            if len(phi) > 3:
                assert phi not in result.stdout + result.stderr


def test_replay_from_zero_changes_nothing(orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path) -> None:
    peers.upload_to_orthanc(orthanc, sample_files(tmp_path / "dicom"))
    env = orthanc_env(orthanc, fhir_server, tmp_path / "store.db")
    assert dicomcast(["run", "--once"], env).returncode == 0
    before = snapshot(fhir_server)

    moved = dicomcast(["checkpoint", "set", f"orthanc:{orthanc.url}", "0"], env)
    again = dicomcast(["run", "--once"], env)

    assert moved.returncode == 0, moved.stderr
    assert again.returncode == 0, again.stderr
    after = snapshot(fhir_server)
    assert versions(after) == versions(before)  # no new version of anything, no new resource
    assert content(after) == content(before)


def test_two_processes_at_once_make_no_duplicates(orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path) -> None:
    files = sample_files(tmp_path / "dicom")
    peers.upload_to_orthanc(orthanc, files)
    # Separate stores: no lease keeps them apart, only idempotent writes do.
    first = start_dicomcast(["run", "--once"], orthanc_env(orthanc, fhir_server, tmp_path / "a.db"), tmp_path / "a.log")
    second = start_dicomcast(
        ["run", "--once"], orthanc_env(orthanc, fhir_server, tmp_path / "b.db"), tmp_path / "b.log"
    )

    assert first.wait(timeout=300) == 0, (tmp_path / "a.log").read_text()
    assert second.wait(timeout=300) == 0, (tmp_path / "b.log").read_text()

    snap = snapshot(fhir_server)
    assert _study_counts(snap) == expected_counts(files)
    assert len(snap["ImagingStudy"]) == len(expected_counts(files))
    identifiers = [
        i["value"] for p in snap["Patient"].values() for i in p["identifier"] if i.get("system") == "urn:oid:1.2.3.4.5"
    ]
    assert len(identifiers) == len(set(identifiers)) == len(snap["Patient"])
    assert len(snap["Endpoint"]) == 1


def _many_instances(tmp_path: Path, count: int) -> list[Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    files = []
    for number in range(count):
        base = bundled("CT_small.dcm" if number % 2 else "MR_small.dcm")
        files.append(copy_instance(base, tmp_path / f"i{number}.dcm", number=number + 10))
    return files


def test_kill_mid_sync_then_restart_equals_undisturbed_run(orthanc: peers.Peer, tmp_path: Path) -> None:
    files = _many_instances(tmp_path / "dicom", 160)
    peers.upload_to_orthanc(orthanc, files)
    reference, disturbed = peers.start_fhir(), peers.start_fhir()
    try:
        assert dicomcast(["run", "--once"], orthanc_env(orthanc, reference, tmp_path / "ref.db")).returncode == 0

        env = orthanc_env(
            orthanc,
            disturbed,
            tmp_path / "store.db",
            DicomCastWorker__BatchSize="20",
            DicomCastWorker__MaxBatchEntries="20",
        )
        # killed after the second batch's writes, before its checkpoint: an event, not a moment in time
        ending = run_and_kill_at(env, tmp_path / "run.log", "before-checkpoint", 2)
        assert ending == "killed at before-checkpoint"
        assert dicomcast(["run", "--once"], env).returncode == 0

        assert content(snapshot(disturbed)) == content(snapshot(reference))
    finally:
        reference.stop()
        disturbed.stop()


@pytest.mark.parametrize("max_bytes", [None, "65536"])
def test_batches_from_orthanc_are_bounded_by_the_bytes_of_metadata_read(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path, max_bytes: str | None
) -> None:
    """40 copies of a real CT image (about 12 KB of metadata each) in one series, Orthanc pages of 10
    changes: each page's series metadata answer holds far more than 65,536 bytes, so with that bound
    every batch is one page, where MaxBatchEntries 40 alone makes one or two. All 40 land either way."""
    directory = tmp_path / "dicom"
    directory.mkdir()
    files = [copy_instance(bundled("CT_small.dcm"), directory / f"ct{n}.dcm", number=n + 1) for n in range(40)]
    peers.upload_to_orthanc(orthanc, files)
    bound = {"DicomCastWorker__MaxBatchBytes": max_bytes} if max_bytes else {}
    env = orthanc_env(
        orthanc,
        fhir_server,
        tmp_path / "store.db",
        DicomCastWorker__BatchSize="10",
        DicomCastWorker__MaxBatchEntries="40",
        **bound,
    )

    result = dicomcast(["run", "--once"], env)

    assert result.returncode == 0, result.stdout + result.stderr
    batches = [line for line in json_lines(result.stdout) if line.get("event") == "page"]
    assert sum(line["entries"] for line in batches) == 40
    # Orthanc's pages also hold its other changes (new series, stable study): 40 instances take
    # more than four pages, and MaxBatchEntries alone ends a batch at 40 entries or the feed's end.
    assert len(batches) >= 4 if max_bytes else len(batches) < 4
    assert list(_study_counts(snapshot(fhir_server)).values()) == [(1, 40)]
