"""One malformed change-feed entry never stalls a source: through the real worker, the loopback Azure
DICOM service (v1, v2) serving one hostile entry among good ones, real Orthanc (a change broken on its
way by a proxy, a UID Orthanc accepts but DICOM does not), and a real FHIR server.

Each kind is asserted the same way: exactly one failure row (also after a replay from the start of the
feed), the checkpoint past the entry, every other entry in FHIR, and nothing of the entry's PHI in
the failure row.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pydicom
import pytest

from dicomcast.dicom.models import UNKNOWN_SEQUENCE
from dicomcast.store import Store, make_engine, migrate
from dicomcast.store.models import Failure
from tests import peers
from tests.integration.azure_worker import azure_env, sync_once
from tests.integration.bulk_data import instances_in, make_bulk, orthanc_sequences, study_uid_of, upload
from tests.integration.pg import fresh_schema
from tests.integration.sync_helpers import dicomcast, orthanc_env, snapshot
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.azure_dicom_data import DicomJson, dicom_json, generate_studies, uids
from tests.servers.faulty_proxy import FaultyProxy, Rewrite

pytestmark = pytest.mark.integration

Form = Callable[[dict[str, Any]], Any]
POISON = 2  # index of the hostile instance: the first of the second study (its sibling must still land)


@pytest.fixture(scope="module")
def fhir() -> Iterator[peers.Peer]:
    """One FHIR server for the module: every test writes studies of its own UIDs."""
    peer = peers.start_fhir()
    yield peer
    peer.stop()


@pytest.fixture
def azure() -> Iterator[AzureDicomServer]:
    with AzureDicomServer() as server:
        yield server


def _phi(instance: DicomJson) -> list[str]:
    """The instance's patient name parts, PatientID, birth date and accession number."""
    name = instance["00100010"]["Value"][0]["Alphabetic"]
    return [
        *name.split("^"),
        instance["00100020"]["Value"][0],
        instance["00100030"]["Value"][0],
        instance["00080050"]["Value"][0],
    ]


def _nested(depth: int) -> str:
    return '{"00400275": {"vr": "SQ", "Value": [' * depth + "{}" + "]}}" * depth


def _with_raw(entry: dict[str, Any], key: str, raw: str) -> str:
    """The entry as JSON text with `key`'s value replaced by `raw` text."""
    return json.dumps({**entry, key: "@@RAW@@"}).replace('"@@RAW@@"', raw)


def _deep_metadata(entry: dict[str, Any]) -> Any:
    return _with_raw(entry, "metadata", _nested(1200)) if "metadata" in entry else entry


def _pn_as_string(entry: dict[str, Any]) -> Any:
    if "metadata" not in entry:
        return entry
    metadata = entry["metadata"]
    return {**entry, "metadata": {**metadata, "00100010": metadata["00100010"]["Value"][0]["Alphabetic"]}}


def _without(key: str) -> Form:
    return lambda entry: {k: v for k, v in entry.items() if k != key}


HOSTILE: dict[str, tuple[Form, bool]] = {  # kind -> (form, whether the entry's own sequence stays readable)
    "impossible timestamp 2024-02-30": (lambda e: {**e, "timestamp": "2024-02-30T00:00:00Z"}, True),
    "timestamp past year 9999": (lambda e: {**e, "timestamp": "9999-12-31T23:59:59-14:00"}, True),
    "timestamp a number": (lambda e: {**e, "timestamp": 1700000000}, True),
    "metadata element a JSON string": (_pn_as_string, True),
    "metadata a JSON string": (lambda e: {**e, "metadata": "not an object"}, True),
    "JSON nested 1,200 levels": (_deep_metadata, True),
    "unknown action": (lambda e: {**e, "action": "Rename"}, True),
    "action a JSON object": (lambda e: {**e, "action": {"value": "Create"}}, True),
    "study UID a number": (lambda e: {**e, "studyInstanceUid": 1.2}, True),
    "series UID null": (lambda e: {**e, "seriesInstanceUid": None}, True),
    "SOP UID missing": (_without("sopInstanceUid"), True),
    "partition name with a path": (lambda e: {**e, "partitionName": "../../studies"}, True),
    "missing sequence": (_without("sequence"), False),
    "sequence a string": (lambda e: {**e, "sequence": "seven"}, False),
    "sequence 2^63": (lambda e: {**e, "sequence": 2**63}, False),
    "sequence 10^40": (lambda e: {**e, "sequence": 10**40}, False),
    "sequence far ahead 10^15": (lambda e: {**e, "sequence": 10**15}, False),  # 64-bit, outside v1's range
}
BOTH_VERSIONS = {"impossible timestamp 2024-02-30", "JSON nested 1,200 levels", "missing sequence", "sequence 2^63"}


def _cases() -> list[Any]:
    return [
        pytest.param(kind, version, id=f"{kind} v{version}")
        for kind in HOSTILE
        for version in ((1, 2) if kind in BOTH_VERSIONS else (1,))
    ]


def _failures(env: dict[str, str]) -> list[Failure]:
    engine = make_engine(env["Store__ConnectionString"])
    try:
        return Store(engine).failures(include_resolved=True)
    finally:
        engine.dispose()


def _checkpoint(env: dict[str, str], source: str) -> str | None:
    engine = make_engine(env["Store__ConnectionString"])
    try:
        migrate(engine)  # idempotent: the first run would do it too
        return Store(engine).read_checkpoint(source)
    finally:
        engine.dispose()


def _replay_from(env: dict[str, str], source: str, cursor: str | None) -> None:
    engine = make_engine(env["Store__ConnectionString"])
    try:
        Store(engine).set_checkpoint(source, cursor)
    finally:
        engine.dispose()


def _instances_in_fhir(fhir: peers.Peer, instances: list[DicomJson]) -> set[str]:
    """SOP Instance UIDs FHIR holds of the studies of `instances`."""
    studies = {uids(i)[0] for i in instances}
    return {
        sop
        for study in snapshot(fhir)["ImagingStudy"].values()
        if study_uid_of(study) in studies
        for sop in instances_in(study)
    }


def _sequence_of(cursor: str | None) -> int:
    return int(str(cursor).split("@")[0])


def _assert_recorded_once_and_passed(
    env: dict[str, str],
    fhir: peers.Peer,
    source: str,
    instances: list[DicomJson],
    poison: DicomJson,
    *,
    sequence: int,
    failure_class: str = "feed",
) -> Failure:
    start = _checkpoint(env, source)
    report = sync_once(env)
    assert report.ok and report.caught_up, report.error
    last = _sequence_of(_checkpoint(env, source))
    _replay_from(env, source, start)
    replay = sync_once(env)
    assert replay.ok and replay.caught_up, replay.error

    rows = _failures(env)
    assert len(rows) == 1, [(r.sequence, r.failure_class, r.message) for r in rows]  # recorded once ...
    row = rows[0]
    assert (row.sequence, row.failure_class, row.attempts) == (sequence, failure_class, 2)  # ... seen twice
    assert last == _sequence_of(_checkpoint(env, source)) >= max(sequence, len(instances))  # past it
    others = {uids(i)[2] for i in instances if i is not poison}
    assert _instances_in_fhir(fhir, instances) == others  # every later (and earlier) entry landed
    text = " ".join(str(getattr(row, column.name)) for column in Failure.__table__.columns)
    assert not [value for value in _phi(poison) if value in text], text
    return row


@pytest.mark.parametrize(("kind", "version"), _cases())
def test_one_hostile_entry_is_one_failure_row_and_the_feed_moves_on(
    kind: str, version: int, azure: AzureDicomServer, fhir: peers.Peer, tmp_path: Path
) -> None:
    instances = generate_studies(3, 2, seed=zlib.crc32(kind.encode()) + version)
    sequences = azure.store_all(instances)
    form, sequence_readable = HOSTILE[kind]
    azure.serve_entry_as(sequences[POISON], form)
    env = azure_env(f"{azure.url}/v{version}", fhir.url, tmp_path / "s.db")

    row = _assert_recorded_once_and_passed(
        env,
        fhir,
        f"azure:{azure.url}/v{version}",
        instances,
        instances[POISON],
        sequence=sequences[POISON] if sequence_readable else UNKNOWN_SEQUENCE,
    )

    assert row.message and "Traceback" not in row.message
    assert row.sop_instance_uid in (uids(instances[POISON])[2], "")  # as far as known
    if kind == "JSON nested 1,200 levels":
        assert row.sop_instance_uid == uids(instances[POISON])[2]  # read again without its metadata


def test_a_uid_over_64_characters_is_recorded_cut(azure: AzureDicomServer, fhir: peers.Peer, tmp_path: Path) -> None:
    instances = generate_studies(3, 2, seed=64)
    long_uid = "1.2.826.0.1.3680043.10.1234." + "7" * 60
    instances[POISON] = {**instances[POISON], **dicom_json(SOPInstanceUID=long_uid)}
    sequences = azure.store_all(instances)
    env = azure_env(f"{azure.url}/v1", fhir.url, tmp_path / "s.db")

    row = _assert_recorded_once_and_passed(
        env, fhir, f"azure:{azure.url}/v1", instances, instances[POISON], sequence=sequences[POISON]
    )

    assert row.sop_instance_uid == long_uid[:61] + "..." and "not a valid UID (88 characters" in row.message


def test_null_metadata_is_read_from_wado_and_lands(azure: AzureDicomServer, fhir: peers.Peer, tmp_path: Path) -> None:
    instances = generate_studies(3, 2, seed=77)
    sequences = azure.store_all(instances)
    azure.serve_entry_as(sequences[POISON], lambda e: {**e, "metadata": None})
    env = azure_env(f"{azure.url}/v1", fhir.url, tmp_path / "s.db")

    assert sync_once(env).ok

    assert _failures(env) == []
    assert _instances_in_fhir(fhir, instances) == {uids(i)[2] for i in instances}


def test_metadata_that_is_no_object_in_the_feed_and_in_wado_is_one_failure(
    azure: AzureDicomServer, fhir: peers.Peer, tmp_path: Path
) -> None:
    instances = generate_studies(3, 2, seed=78)
    sequences = azure.store_all(instances)
    azure.serve_entry_as(sequences[POISON], _without("metadata"))
    azure.serve_metadata_as(uids(instances[POISON])[2], lambda metadata: [None])
    env = azure_env(f"{azure.url}/v2", fhir.url, tmp_path / "s.db")

    row = _assert_recorded_once_and_passed(
        env, fhir, f"azure:{azure.url}/v2", instances, instances[POISON], sequence=sequences[POISON]
    )

    assert "not one DICOM JSON object" in row.message


def test_a_value_the_mapping_refuses_is_a_dicom_failure_without_phi(
    azure: AzureDicomServer, fhir: peers.Peer, tmp_path: Path
) -> None:
    """Valid JSON, invalid DICOM: an impossible birth date (the mapping's failure, not the feed's)."""
    instances = generate_studies(3, 2, seed=79)
    instances[POISON] = {**instances[POISON], **dicom_json(PatientBirthDate="20240230", StudyDate="20240230")}
    sequences = azure.store_all(instances)
    env = azure_env(
        f"{azure.url}/v1", fhir.url, tmp_path / "s.db", DicomCast__Features__EnforceValidationOfTagValues="true"
    )

    _assert_recorded_once_and_passed(
        env,
        fhir,
        f"azure:{azure.url}/v1",
        instances,
        instances[POISON],
        sequence=sequences[POISON],
        failure_class="dicom",
    )


@pytest.mark.parametrize("version", [1, 2])
def test_sequences_past_2_to_the_31_on_postgresql(
    version: int, azure: AzureDicomServer, fhir: peers.Peer, tmp_path: Path
) -> None:
    instances = generate_studies(3, 2, seed=31 + version)
    azure.skip_sequences(2**31 - 3)  # the entries straddle 2^31
    sequences = azure.store_all(instances)
    assert sequences[POISON] >= 2**31
    azure.serve_entry_as(sequences[POISON], lambda e: {**e, "action": "Rename"})
    with fresh_schema() as url:
        env = azure_env(f"{azure.url}/v{version}", fhir.url, tmp_path / "unused.db", Store__ConnectionString=url)
        source = f"azure:{azure.url}/v{version}"
        if version == 1:  # v1 steps through a gap 100 sequences at a time: start just before the entries
            engine = make_engine(url)
            migrate(engine)
            Store(engine).set_checkpoint(source, str(sequences[0] - 1))
            engine.dispose()

        row = _assert_recorded_once_and_passed(
            env, fhir, source, instances, instances[POISON], sequence=sequences[POISON]
        )

    assert row.sequence == sequences[POISON] >= 2**31


# ---- Orthanc: a change log entry broken on its way (a proxy), and DICOM data Orthanc accepts --------


def _orthanc_failures(env: dict[str, str]) -> list[list[str]]:
    result = dicomcast(["failures", "list", "--all"], env)
    assert result.returncode == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines() if line]


def _corrupt_change(seq: int, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Rewrite:
    def body(content: bytes) -> bytes:
        page = json.loads(content)
        page["Changes"] = [change(c) if c.get("Seq") == seq else c for c in page["Changes"]]
        return json.dumps(page).encode()

    return Rewrite(lambda method, path: method == "GET" and path.startswith("/changes?since="), body)


@pytest.mark.parametrize(
    ("kind", "change", "sequence_readable"),
    [
        ("Seq a string", lambda c: {**c, "Seq": "seven"}, False),
        ("ID a path", lambda c: {**c, "ID": "../../tools/reset"}, True),
        ("ID missing", lambda c: {k: v for k, v in c.items() if k != "ID"}, True),
        ("change a JSON string", lambda c: "NewInstance", False),
    ],
)
def test_one_malformed_orthanc_change_is_one_failure_row(
    kind: str,
    change: Callable[[dict[str, Any]], Any],
    sequence_readable: bool,
    orthanc: peers.Peer,
    fhir: peers.Peer,
    tmp_path: Path,
) -> None:
    bulk = make_bulk(f"malformed-{zlib.crc32(kind.encode())}", 3, 2)
    upload(orthanc, bulk.instances)
    sequences = orthanc_sequences(orthanc)
    poison = bulk.instances[POISON]
    proxy = FaultyProxy(orthanc.url, rate=0.0)
    proxy.rewrites.append(_corrupt_change(sequences[poison.sop_instance_uid], change))
    proxy.start()
    try:
        through = peers.Peer(orthanc.process, orthanc.workdir, proxy.url, orthanc.log, dict(orthanc.extra))
        env = orthanc_env(through, fhir, tmp_path / "store.db")
        assert dicomcast(["run", "--once"], env).returncode == 0
        assert dicomcast(["checkpoint", "set", f"orthanc:{proxy.url}", "0"], env).returncode == 0
        assert dicomcast(["run", "--once"], env).returncode == 0  # a replay meets it again
        rows = _orthanc_failures(env)
        checkpoint = _checkpoint(env, f"orthanc:{proxy.url}")
    finally:
        proxy.stop()

    assert len(rows) == 1, rows  # recorded once, seen twice
    _, _, failure_class, sequence, _, _, _, attempts, state, message = rows[0]
    expected = sequences[poison.sop_instance_uid] if sequence_readable else UNKNOWN_SEQUENCE
    assert (failure_class, int(sequence), attempts, state) == ("feed", expected, "2", "open")
    assert int(checkpoint or 0) >= max(sequences.values())  # past it
    held = {sop for s in snapshot(fhir)["ImagingStudy"].values() for sop in instances_in(s)}
    assert held >= {i.sop_instance_uid for i in bulk.instances} - {poison.sop_instance_uid}  # the others landed
    assert poison.patient_id not in message and "Bulk" not in message


def test_an_orthanc_instance_with_a_uid_over_64_characters_on_postgresql(
    orthanc: peers.Peer, fhir: peers.Peer, tmp_path: Path
) -> None:
    """Orthanc stores what it is sent; a SOP Instance UID of 80 characters reaches the feed."""
    bulk = make_bulk("long-uid", 3, 2)
    poison = bulk.instances[POISON]
    dataset = pydicom.dcmread(io.BytesIO(poison.data))
    long_uid = poison.sop_instance_uid[:40] + "." + "9" * 39
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = long_uid
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    bulk.instances[POISON] = replace(poison, sop_instance_uid=long_uid, data=out.getvalue())
    upload(orthanc, bulk.instances)
    with fresh_schema() as url:
        env = orthanc_env(orthanc, fhir, tmp_path / "unused.db", Store__ConnectionString=url)
        assert dicomcast(["run", "--once"], env).returncode == 0
        assert dicomcast(["checkpoint", "set", f"orthanc:{orthanc.url}", "0"], env).returncode == 0
        assert dicomcast(["run", "--once"], env).returncode == 0
        rows = _orthanc_failures(env)

    assert len(rows) == 1, rows
    assert rows[0][2] == "feed" and rows[0][6] == long_uid[:61] + "..." and rows[0][7] == "2"
    held = {sop for s in snapshot(fhir)["ImagingStudy"].values() for sop in instances_in(s)}
    assert held >= {i.sop_instance_uid for i in bulk.instances} - {long_uid}
