"""Studies of a batch share FHIR transactions (worker/bundles.py): sized by entries and bytes; a
study the server refuses or that meets a version conflict is split out and the others still land."""

from __future__ import annotations

from typing import Any

from dicomcast.worker.loop import SourceWorker
from dicomcast.worker.state import WorkerState
from tests.unit.worker.fakes import FakeFhir, FakeSource, make_context, memory_store, study_entries, study_uid_in

A, B, C, D = "1.2.3.1", "1.2.3.2", "1.2.3.3", "1.2.3.4"


def _worker(source: FakeSource, fhir: FakeFhir, **tuning: Any) -> SourceWorker:
    return SourceWorker(make_context(source, fhir, memory_store(), **tuning), WorkerState(), "host:1:a")


def _four_patients() -> FakeSource:
    return FakeSource(
        [[e for n, uid in enumerate((A, B, C, D)) for e in study_entries(uid, [n + 1], patient_id=f"PAT-{n}")]]
    )


def _studies_per_transaction(fhir: FakeFhir) -> list[list[str]]:
    return [[u for u in map(study_uid_in, t["entry"]) if u] for t in fhir.transactions]


def test_small_studies_of_a_batch_share_one_transaction() -> None:
    fhir = FakeFhir()

    assert _worker(_four_patients(), fhir).run_cycle().ok

    assert _studies_per_transaction(fhir) == [[A, B, C, D]]
    assert sum(1 for t in fhir.transactions for e in t["entry"] if e["resource"]["resourceType"] == "Patient") == 4


def test_bundles_hold_at_most_max_bundle_entries() -> None:
    fhir = FakeFhir()

    assert _worker(_four_patients(), fhir, max_bundle_entries=5, max_concurrent_studies=1).run_cycle().ok

    # a study's Patient and ImagingStudy: 2; the first transaction carries the Endpoint too
    assert [len(t["entry"]) for t in fhir.transactions] == [5, 4]
    assert _studies_per_transaction(fhir) == [[A, B], [C, D]]


def test_bundles_hold_at_most_max_bundle_bytes() -> None:
    fhir = FakeFhir()

    assert _worker(_four_patients(), fhir, max_bundle_bytes=1024, max_concurrent_studies=1).run_cycle().ok

    assert _studies_per_transaction(fhir) == [[A], [B], [C], [D]]  # one study alone is larger: sent anyway


def test_a_study_the_server_refuses_fails_alone_and_the_others_land() -> None:
    fhir = FakeFhir()
    fhir.refuse_study.add(B)
    worker = _worker(_four_patients(), fhir)

    report = worker.run_cycle()

    assert report.ok and report.failures == 1
    [row] = worker.ctx.store.failures(source="fake:feed")
    assert (row.failure_class, row.study_uid) == ("fhir", B)
    assert sorted(fhir.studies_written()) == [A, C, D]


def test_a_version_conflict_splits_the_bundle_and_every_study_lands() -> None:
    fhir = FakeFhir()
    fhir.conflict_once.add(C)

    report = _worker(_four_patients(), fhir).run_cycle()

    assert report.ok and report.failures == 0
    assert _studies_per_transaction(fhir) == [[A, B], [C, D]]  # the 412 answered nothing written: halves again
