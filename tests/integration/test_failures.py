"""Poison entries (unreadable DICOM data, FHIR 422) are recorded once, skipped, and replayed by
`dicomcast failures retry` once fixed; Orthanc deletions are reconciled into FHIR."""

from __future__ import annotations

from pathlib import Path

import httpx
import pydicom
import pytest

from tests import peers
from tests.integration import bulk_data
from tests.integration.sync_helpers import dicomcast, orthanc_env, snapshot
from tests.sample_data import bundled, copy_instance, sample_files
from tests.servers.faulty_proxy import FaultyProxy, Rule, outcome

pytestmark = pytest.mark.integration


def _failure_rows(env: dict[str, str], *args: str) -> list[list[str]]:
    result = dicomcast(["failures", "list", *args], env)
    assert result.returncode == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def _orthanc(orthanc: peers.Peer) -> httpx.Client:
    return httpx.Client(base_url=orthanc.url, auth=(orthanc.extra["username"], orthanc.extra["password"]), timeout=30)


def _instances_of(snap: dict, study_uid: str) -> set[str]:
    return {
        uid
        for s in snap["ImagingStudy"].values()
        if bulk_data.study_uid_of(s) == study_uid
        for uid in bulk_data.instances_in(s)
    }


def test_unreadable_dicom_is_recorded_once_skipped_and_replayed_after_a_fix(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    files = sample_files(tmp_path / "dicom", extra_instances=1)
    poison_path = copy_instance(bundled("CT_small.dcm"), tmp_path / "poison.dcm", number=99)
    poison = pydicom.dcmread(poison_path)
    poison.Modality = "CTCTCTCTCTCTCTCTCT"  # longer than a CS may be: unreadable
    poison.save_as(poison_path)
    peers.upload_to_orthanc(orthanc, [*files, poison_path])
    env = orthanc_env(orthanc, fhir_server, tmp_path / "store.db")

    assert dicomcast(["run", "--once"], env).returncode == 0
    assert dicomcast(["checkpoint", "set", f"orthanc:{orthanc.url}", "0"], env).returncode == 0
    assert dicomcast(["run", "--once"], env).returncode == 0  # replayed: the same failure again

    rows = _failure_rows(env, "--class", "dicom")
    assert len(rows) == 1  # recorded once ...
    failure_id, _, failure_class, _, action, study_uid, sop_uid, attempts, state, message = rows[0]
    assert (failure_class, action, sop_uid, attempts, state) == ("dicom", "create", poison.SOPInstanceUID, "2", "open")
    assert "Modality" in message
    assert poison.SOPInstanceUID not in _instances_of(snapshot(fhir_server), study_uid)  # ... and skipped
    assert _failure_rows(env, "--study", "9.9.9") == []
    shown = dicomcast(["failures", "show", failure_id], env)
    assert f"sop_instance_uid: {poison.SOPInstanceUID}" in shown.stdout

    still = dicomcast(["failures", "retry", failure_id], env)  # not fixed yet: fails again
    assert still.returncode == 1 and "still failing" in still.stdout
    with _orthanc(orthanc) as client:  # the fix: the instance corrected in the DICOM server
        found = client.post("/tools/lookup", content=poison.SOPInstanceUID).json()
        client.delete(f"/instances/{found[0]['ID']}").raise_for_status()
        poison.Modality = "CT"
        poison.save_as(poison_path)
        client.post("/instances", content=poison_path.read_bytes()).raise_for_status()

    fixed = dicomcast(["failures", "retry", "--all"], env)

    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "1 resolved, 0 still failing" in fixed.stdout
    assert poison.SOPInstanceUID in _instances_of(snapshot(fhir_server), study_uid)
    assert _failure_rows(env) == []
    assert _failure_rows(env, "--all")[0][8] == "resolved"


def test_fhir_422_is_recorded_per_entry_and_replayed_after_a_fix(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    bulk = bulk_data.make_bulk("poison", 4, 3)
    bulk_data.upload(orthanc, bulk.instances)
    poisoned = bulk.instances[0].study_uid
    proxy = FaultyProxy(fhir_server.url.removesuffix("/fhir"), rate=0.0)
    rule = Rule(
        lambda method, path, body: method == "POST" and poisoned.encode() in body,
        422,
        outcome("ImagingStudy.series: rejected by a profile"),
    )
    proxy.rules.append(rule)
    proxy.start()
    try:
        flaky = peers.Peer(fhir_server.process, fhir_server.workdir, f"{proxy.url}/fhir", fhir_server.log)
        env = orthanc_env(orthanc, flaky, tmp_path / "store.db")
        assert dicomcast(["run", "--once"], env).returncode == 0
        rows = _failure_rows(env, "--class", "fhir")
        assert sorted(r[6] for r in rows) == sorted(bulk.studies()[poisoned])  # one row per entry
        assert {r[5] for r in rows} == {poisoned} and {r[7] for r in rows} == {"1"}
        snap = snapshot(fhir_server)
        assert _instances_of(snap, poisoned) == set()  # skipped; the other studies landed
        others = {u: s for u, s in bulk.studies().items() if u != poisoned}
        assert all(_instances_of(snap, u) == s for u, s in others.items())

        proxy.rules.remove(rule)  # the fix (a profile relaxed on the FHIR server)
        fixed = dicomcast(["failures", "retry", "--all"], env)
    finally:
        proxy.stop()

    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert bulk_data.exact(snapshot(fhir_server), bulk) == []
    assert _failure_rows(env) == []


def test_instances_deleted_from_orthanc_are_deleted_from_fhir(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    bulk = bulk_data.make_bulk("reconcile", 3, 4)
    bulk_data.upload(orthanc, bulk.instances)
    env = orthanc_env(orthanc, fhir_server, tmp_path / "store.db")
    assert dicomcast(["run", "--once"], env).returncode == 0
    studies = sorted(bulk.studies())
    gone_study, trimmed_study = studies[0], studies[1]
    trimmed_sop = sorted(bulk.studies()[trimmed_study])[0]
    with _orthanc(orthanc) as client:
        study_id = client.post("/tools/lookup", content=gone_study).json()[0]["ID"]
        client.delete(f"/studies/{study_id}").raise_for_status()
        instance_id = client.post("/tools/lookup", content=trimmed_sop).json()[0]["ID"]
        client.delete(f"/instances/{instance_id}").raise_for_status()

    reconciled = dicomcast(["run", "--once"], env)  # the counts disagree: applied in this run

    assert reconciled.returncode == 0, reconciled.stdout[-2000:]
    marker = f"reconcile:orthanc:{orthanc.url}"
    snap = snapshot(fhir_server)
    held = {bulk_data.study_uid_of(s): set(bulk_data.instances_in(s)) for s in snap["ImagingStudy"].values()}
    assert gone_study not in held
    assert held[trimmed_study] == bulk.studies()[trimmed_study] - {trimmed_sop}
    assert held[studies[2]] == bulk.studies()[studies[2]]
    assert bulk_data.check_no_duplicates(snap) == []
    again = dicomcast(["checkpoint", "set", marker, "0"], env)
    before = snapshot(fhir_server)
    assert again.returncode == 0 and dicomcast(["run", "--once"], env).returncode == 0
    assert snapshot(fhir_server) == before  # nothing left to delete: nothing written
