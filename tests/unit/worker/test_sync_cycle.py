"""The worker core without servers: a fake feed, FHIR through httpx.MockTransport, an in-memory store.

Pins the loop's contract: the checkpoint is saved only after every study of the batch is written
or recorded as a failure; a worker that lost its lease writes no checkpoint; lanes keep studies that
share a Patient in order and run the others concurrently; a failure is recorded once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from dicomcast.config.settings import WorkerSettings
from dicomcast.dicom.models import ChangeAction, Page, UnreadableEntry
from dicomcast.errors import PermanentUpstreamError
from dicomcast.fhir.mapping.types import PatientKey
from dicomcast.worker import bundles, loop
from dicomcast.worker.availability import Backoff
from dicomcast.worker.lanes import lanes as _lanes
from dicomcast.worker.loop import SourceWorker
from dicomcast.worker.runner import Runner, run_once
from dicomcast.worker.state import WorkerState
from tests.unit.mapping.builders import entry
from tests.unit.worker.fakes import FakeFhir, FakeSource, make_context, memory_store, study_entries, study_uid_in

A, B, C = "1.2.3.1", "1.2.3.2", "1.2.3.3"
WAIT = 60.0  # generous bound on an event another thread sets; never reached when the code is right


def _worker(source: FakeSource, fhir: FakeFhir, owner: str = "host:1:a", **tuning: Any) -> SourceWorker:
    return SourceWorker(make_context(source, fhir, memory_store(), **tuning), WorkerState(), owner)


def test_a_cycle_writes_every_study_then_checkpoints_each_batch_after_its_writes() -> None:
    source = FakeSource([study_entries(A, [1, 2]), study_entries(B, [3], patient_id="PAT-2")])
    fhir = FakeFhir()
    worker = _worker(source, fhir, max_batch_entries=1)
    checkpoint_seen: list[str | None] = []
    fhir.on_transaction.append(lambda _: checkpoint_seen.append(worker.ctx.store.read_checkpoint(source.name)))

    report = worker.run_cycle()

    assert report.ok and report.caught_up and report.pages == 2 and report.entries == 3
    assert fhir.studies_written() == [A, B]
    assert checkpoint_seen == [None, "1"]  # page 2's write saw page 1's checkpoint, never its own
    assert worker.ctx.store.read_checkpoint(source.name) == "2"
    assert worker.state.status(source.name).checkpoint == "2"


def test_a_cycle_resumes_after_its_checkpoint() -> None:
    source = FakeSource([study_entries(A, [1]), study_entries(B, [2], patient_id="PAT-2")])
    fhir = FakeFhir()
    worker = _worker(source, fhir, max_batch_entries=1)
    worker.ctx.store.save_page(source.name, "1")

    assert worker.run_cycle().ok

    assert source.reads[0] == "1" and fhir.studies_written() == [B]


def test_a_worker_that_lost_its_lease_during_a_batch_writes_no_checkpoint() -> None:
    source = FakeSource([study_entries(A, [1])])
    fhir = FakeFhir()
    worker = _worker(source, fhir)
    store = worker.ctx.store
    fhir.on_transaction.append(
        lambda _: store.acquire_lease(source.name, "other:2:b", timedelta(minutes=1), take_from=worker.owner)
    )

    report = worker.run_cycle()

    assert not report.ok and "lease" in (report.error or "")
    assert fhir.studies_written() == [A]  # the write happened; its checkpoint did not
    assert store.read_checkpoint(source.name) is None
    assert not worker.state.status(source.name).lease_held


def test_a_standby_waits_without_reading_or_writing() -> None:
    source = FakeSource([study_entries(A, [1])])
    fhir = FakeFhir()
    holder = _worker(source, fhir)
    standby = SourceWorker(holder.ctx, WorkerState(), "other:2:b")
    assert holder.run_cycle().ok
    writes = len(fhir.transactions)

    report = standby.run_cycle()

    assert report.ok and report.waiting_for_lease and report.pages == 0
    assert len(fhir.transactions) == writes


def test_run_once_releases_the_lease_for_the_next_worker() -> None:
    source = FakeSource([study_entries(A, [1])])
    worker = _worker(source, FakeFhir())

    [report] = run_once([worker], reconcile_interval=timedelta(0))

    assert report.ok and worker.ctx.store.lease(source.name) is None


def test_a_refused_study_is_recorded_once_and_the_others_and_the_checkpoint_go_on() -> None:
    source = FakeSource([study_entries(A, [1]) + study_entries(B, [2], patient_id="PAT-2")])
    fhir = FakeFhir()
    fhir.refuse_study.add(A)
    worker = _worker(source, fhir)

    first = worker.run_cycle()
    worker.ctx.store.save_page(source.name, "0")  # the same batch again (a replay)
    second = worker.run_cycle()

    assert first.ok and first.failures == 1 and second.failures == 1
    rows = worker.ctx.store.failures(source=source.name)
    assert [(r.study_uid, r.failure_class, r.sequence, r.attempts) for r in rows] == [(A, "fhir", 1, 2)]
    assert B in fhir.studies_written()
    assert worker.ctx.store.read_checkpoint(source.name) == "1"


def test_an_unreadable_feed_entry_is_one_feed_failure_row() -> None:
    source = FakeSource([study_entries(A, [1])], unreadable={0: [UnreadableEntry(7, "no SOP Instance UID")]})
    worker = _worker(source, FakeFhir())

    report = worker.run_cycle()

    assert report.ok and report.failures == 1
    [row] = worker.ctx.store.failures(source=source.name)
    assert (row.failure_class, row.sequence) == ("feed", 7)


def test_studies_of_one_patient_are_written_in_feed_order_and_the_patient_once() -> None:
    source = FakeSource([study_entries(A, [1]) + study_entries(B, [2]) + study_entries(C, [3])])
    fhir = FakeFhir()
    worker = _worker(source, fhir)

    assert worker.run_cycle().ok

    assert fhir.studies_written() == [A, B, C]
    patient_writes = [e for t in fhir.transactions for e in t["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert len(patient_writes) == 1  # one lane: the later studies saw the Patient the first one wrote


def test_studies_of_different_patients_are_written_concurrently() -> None:
    source = FakeSource([study_entries(A, [1], patient_id="PAT-1") + study_entries(B, [2], patient_id="PAT-2")])
    fhir = FakeFhir()
    both_in_flight = threading.Barrier(2, timeout=WAIT)
    fhir.on_transaction.append(lambda _: both_in_flight.wait())  # breaks (fails the test) if run one by one
    # Two entries per transaction (a Patient and its study): one bundle per study, both in flight.
    worker = _worker(source, fhir, max_concurrent_studies=2, max_bundle_entries=2)

    report = worker.run_cycle()

    assert report.ok and sorted(fhir.studies_written()) == [A, B]


def test_one_study_at_a_time_when_max_concurrent_studies_is_one() -> None:
    source = FakeSource([study_entries(A, [1], patient_id="PAT-1") + study_entries(B, [2], patient_id="PAT-2")])
    fhir = FakeFhir()
    threads: set[str] = set()
    fhir.on_transaction.append(lambda _: threads.add(threading.current_thread().name))
    worker = _worker(source, fhir, max_concurrent_studies=1)

    assert worker.run_cycle().ok
    assert len(threads) == 1 and fhir.studies_written() == [A, B]  # one study thread, feed order


def _key(value: str) -> PatientKey:
    return PatientKey(None, value)


@pytest.mark.parametrize(
    ("keys", "lanes"),
    [
        ({"a": ["p1"], "b": ["p2"], "c": ["p1"]}, [["a", "c"], ["b"]]),
        ({"a": ["p1"], "b": ["p2"], "c": ["p2", "p1"]}, [["a", "b", "c"]]),  # c joins two lanes
        ({"a": [], "b": []}, [["a"], ["b"]]),  # no Patient key: a lane each
        # d joins the lanes of a/c and b: the joined lane stays in feed order
        ({"a": ["p1"], "b": ["p2"], "c": ["p1"], "d": ["p2", "p1"]}, [["a", "b", "c", "d"]]),
        ({"a": ["p1"], "b": ["p2"], "c": ["p3"], "d": ["p3", "p2"], "e": ["p4"]}, [["a"], ["b", "c", "d"], ["e"]]),
    ],
)
def test_lanes_group_studies_that_share_a_patient(keys: dict[str, list[str]], lanes: list[list[str]]) -> None:
    groups: dict[Any, Any] = {(None, s): [] for s in keys}
    study_keys = {(None, s): [_key(k) for k in ks] for s, ks in keys.items()}

    found = _lanes(groups, study_keys)

    assert [[uid for _, uid in lane] for lane in found] == lanes


class _Recorded(Runner):
    """A runner whose next-cycle decisions are recorded instead of handed to the scheduler."""

    def __init__(self, workers: list[SourceWorker]) -> None:
        super().__init__(workers, WorkerSettings(), threading.Event())
        self.delays: list[timedelta] = []

    def _schedule(self, worker: SourceWorker, delay: timedelta) -> None:
        self.delays.append(delay)


class _DownSource(FakeSource):
    def read_page(self, cursor: str | None) -> Page:
        raise PermanentUpstreamError("DICOM server", "answered 400")


def test_the_runner_schedules_catch_up_poll_interval_standby_and_backoff() -> None:
    settings = WorkerSettings()
    source = FakeSource([study_entries(A, [1]), study_entries(B, [2], patient_id="PAT-2")])
    fhir = FakeFhir()
    worker = _worker(source, fhir, max_batch_entries=1)
    runner = _Recorded([worker])
    fhir.on_transaction.append(lambda _: worker.ctx.stop_event.set())  # stopped after one batch: behind

    runner._cycle(worker)
    worker.ctx.stop_event.clear()
    fhir.on_transaction.clear()
    runner._cycle(worker)  # the rest: caught up
    runner._cycle(SourceWorker(worker.ctx, WorkerState(), "other:2:b"))  # the lease is held: standby
    down = _worker(_DownSource([]), fhir)
    runner.backoffs[down.name] = Backoff()
    runner._cycle(down)
    runner._cycle(down)

    catch_up, caught_up, standby, failed, failed_again = runner.delays
    assert catch_up == settings.poll_interval_during_catchup
    assert caught_up == settings.poll_interval
    assert standby == min(settings.poll_interval, settings.lease_duration / 2)
    assert settings.poll_interval <= failed <= failed_again


def test_a_batchs_endpoint_is_checked_beside_its_read_and_written_once_in_its_first_transaction() -> None:
    fhir = FakeFhir()
    checked = threading.Event()
    handle = fhir.handle
    requests: list[str] = []

    def noted(request: Any) -> Any:
        requests.append(f"{request.method} {request.url.path}")
        if request.method == "GET" and request.url.path.startswith("/Endpoint/"):
            checked.set()
        return handle(request)

    class WaitsForTheCheck(FakeSource):
        def read_page(self, cursor: str | None) -> Page:
            if cursor is not None:  # a later page returns once the Endpoint was checked: beside it
                assert checked.wait(WAIT), "the Endpoint was not checked beside the batch's read"
            return super().read_page(cursor)

    fhir.handle = noted  # type: ignore[method-assign]
    source = WaitsForTheCheck([study_entries(A, [1]), study_entries(B, [2], patient_id="PAT-2")])
    worker = _worker(source, fhir, max_batch_entries=2)  # one batch of two pages

    report = worker.run_cycle()

    assert report.ok and fhir.studies_written() == [A, B]
    [endpoint] = [r for key, r in fhir.resources.items() if key.startswith("Endpoint/")]
    assert endpoint["meta"]["versionId"] == "1"  # written once
    assert not [r for r in requests if r.startswith("PUT /Endpoint/")]  # not alone:
    assert fhir.transactions[0]["entry"][0]["request"] == {"method": "PUT", "url": f"Endpoint/{endpoint['id']}"}


def test_an_endpoint_check_that_fails_beside_the_read_is_done_again_by_the_batch() -> None:
    fhir = FakeFhir()
    refused: list[str] = []
    handle = fhir.handle

    def first_endpoint_read_refused(request: Any) -> Any:
        if request.method == "GET" and request.url.path.startswith("/Endpoint/") and not refused:
            refused.append(request.url.path)
            return httpx.Response(503, json={"resourceType": "OperationOutcome"})
        return handle(request)

    fhir.handle = first_endpoint_read_refused  # type: ignore[method-assign]
    source = FakeSource([study_entries(A, [1])])
    worker = _worker(source, fhir)

    report = worker.run_cycle()

    assert refused and report.ok and fhir.studies_written() == [A]
    endpoints = [r for key, r in fhir.resources.items() if key.startswith("Endpoint/")]
    assert len(endpoints) == 1 and endpoints[0]["meta"]["versionId"] == "1"


def test_the_next_batchs_lookups_run_beside_this_batchs_writes_and_see_them_through_what_it_wrote() -> None:
    """Batch 2 is looked up before batch 1's transaction is applied (held until then), so its searches
    find neither the study nor the Patient batch 1 creates. What batch 1 wrote must still be what
    batch 2 continues: the study keeps instances 1 and 2, nothing is written again without If-Match."""
    fhir = FakeFhir()
    looked_up = threading.Event()
    searches: list[str] = []
    search = fhir._search

    def noted_search(resource_type: str, params: dict[str, list[str]]) -> dict[str, Any]:
        answer = search(resource_type, params)
        searches.append(resource_type)
        if searches.count("ImagingStudy") == 2 and searches.count("Patient") == 2:  # batch 1's, then batch 2's
            looked_up.set()
        return answer

    held: list[bool] = []

    def hold_the_first_write(_: dict[str, Any]) -> None:
        if not held:
            held.append(looked_up.wait(WAIT))  # batch 2's searches are answered first

    fhir._search = noted_search  # type: ignore[method-assign]
    fhir.on_transaction.append(hold_the_first_write)
    source = FakeSource([study_entries(A, [1, 2]), study_entries(A, [3]) + study_entries(B, [4])])
    worker = _worker(source, fhir, max_batch_entries=2)  # a batch per page

    report = worker.run_cycle()

    assert report.ok and report.pages == 2 and held == [True]
    studies = {uid: r for r in fhir.resources.values() if (uid := _study_uid(r))}
    assert sorted(studies) == [A, B]
    assert _instances(studies[A]) == ["1.2.3.1.1.1", "1.2.3.1.1.2", "1.2.3.1.1.3"]
    assert len([key for key in fhir.resources if key.startswith("Patient/")]) == 1
    second = fhir.transactions[1]["entry"]
    rewritten = [e["request"] for e in second if e["request"]["url"] in {u for u in _urls(fhir.transactions[0])}]
    assert rewritten and all(r.get("ifMatch") for r in rewritten)  # as batch 1 left them, never blind


def _study_uid(resource: dict[str, Any]) -> str | None:
    if resource.get("resourceType") != "ImagingStudy":
        return None
    return str(resource["identifier"][0]["value"]).removeprefix("urn:oid:")


def _instances(study: dict[str, Any]) -> list[str]:
    return sorted(i["uid"] for s in study["series"] for i in s["instance"])


def _urls(bundle: dict[str, Any]) -> list[str]:
    return [str(e["request"]["url"]) for e in bundle["entry"]]


def test_pages_are_read_on_while_the_endpoint_is_checked() -> None:
    """The Endpoint's check is held until the batch's third page is read: the read must not wait
    for it (the cache holds its lock while it checks; the prefetch bookkeeping must not)."""
    fhir = FakeFhir()
    third_page_read = threading.Event()
    held: list[bool] = []
    handle = fhir.handle

    def hold_the_endpoint_check(request: Any) -> Any:
        if request.method == "GET" and request.url.path.startswith("/Endpoint/"):
            held.append(third_page_read.wait(WAIT))
        return handle(request)

    class NotesItsReads(FakeSource):
        def read_page(self, cursor: str | None) -> Page:
            page = super().read_page(cursor)
            if cursor == "2":
                third_page_read.set()
            return page

    fhir.handle = hold_the_endpoint_check  # type: ignore[method-assign]
    source = NotesItsReads([study_entries(A, [1]), study_entries(B, [2], patient_id="PAT-2"), study_entries(C, [3])])
    worker = _worker(source, fhir, max_batch_entries=3)  # one batch of three pages

    report = worker.run_cycle()

    assert report.ok and held == [True] and fhir.studies_written() == [A, B, C]


def test_a_batchs_first_page_is_looked_up_while_its_next_pages_are_read() -> None:
    """Page 2 is returned only once page 1's study has been searched; the batch then searches only
    what page 2 added, and links the Patient page 1's search found (written in an earlier cycle)."""
    fhir = FakeFhir()
    first = FakeSource([study_entries(A, [1])])
    _worker(first, fhir).run_cycle()
    searched: list[tuple[str, set[str]]] = []
    search = fhir._search
    page_one_searched = threading.Event()

    def noted_search(resource_type: str, params: dict[str, list[str]]) -> dict[str, Any]:
        tokens = {t for v in params.get("identifier", []) for t in v.split(",")}
        searched.append((resource_type, tokens))
        if resource_type == "ImagingStudy" and any(B in t for t in tokens):
            page_one_searched.set()
        return search(resource_type, params)

    class WaitsForTheLookup(FakeSource):
        def read_page(self, cursor: str | None) -> Page:
            if cursor == "1":
                assert page_one_searched.wait(WAIT), "page 1 was not looked up beside page 2's read"
            return super().read_page(cursor)

    fhir._search = noted_search  # type: ignore[method-assign]
    source = WaitsForTheLookup(
        [study_entries(B, [1]), study_entries(B, [2]) + study_entries(C, [3], patient_id="PAT-3")]
    )
    worker = _worker(source, fhir, max_batch_entries=3)  # one batch of two pages

    report = worker.run_cycle()

    assert report.ok and report.pages == 1 and fhir.studies_written() == [A, B, C]
    studies = [tokens for kind, tokens in searched if kind == "ImagingStudy"]
    assert len(studies) == 2 and any(B in t for t in studies[0]) and all(C in t for t in studies[1])
    assert not any(B in t for t in studies[1])  # not searched twice
    assert len([key for key in fhir.resources if key.startswith("Patient/")]) == 2  # PAT-1 found, PAT-3 new
    b = next(r for r in fhir.resources.values() if _study_uid(r) == B)
    assert _instances(b) == ["1.2.3.2.1.1", "1.2.3.2.1.2"]


def test_the_endpoint_travels_at_the_head_of_the_first_transaction_never_after_a_study() -> None:
    """One request fewer than a PUT before the batch, and the transaction lands whole or not at all:
    the study that refers to the Endpoint never lands without it."""
    fhir = FakeFhir()
    order: list[str] = []
    handle = fhir.handle

    def noted(request: Any) -> Any:
        if request.method == "PUT" and request.url.path.startswith("/Endpoint/"):
            order.append("Endpoint alone")
        elif request.method == "POST" and request.url.path.strip("/") == "":
            kinds = [e["resource"]["resourceType"] for e in json.loads(request.content)["entry"]]
            order.append(" ".join(kinds))
        return handle(request)

    fhir.handle = noted  # type: ignore[method-assign]
    source = FakeSource([study_entries(A, [1]), study_entries(B, [2], patient_id="PAT-2")])
    worker = _worker(source, fhir, max_batch_entries=1)  # a batch per page: the second carries nothing

    report = worker.run_cycle()

    assert report.ok and order == ["Endpoint Patient ImagingStudy", "Patient ImagingStudy"]
    [endpoint] = [key for key in fhir.resources if key.startswith("Endpoint/")]
    assert all(_study(fhir, uid)["endpoint"] == [{"reference": endpoint}] for uid in (A, B))


def test_a_first_transaction_refused_for_one_study_writes_the_endpoint_alone_and_lands_the_others() -> None:
    fhir = FakeFhir()
    fhir.refuse_study.add(B)
    order: list[str] = []
    handle = fhir.handle

    def noted(request: Any) -> Any:
        if request.method == "PUT" and request.url.path.startswith("/Endpoint/"):
            order.append("Endpoint alone")
        elif request.method == "POST" and request.url.path.strip("/") == "":
            order.append("transaction")
        return handle(request)

    fhir.handle = noted  # type: ignore[method-assign]
    pages = [[e for n, uid in enumerate((A, B, C)) for e in study_entries(uid, [n + 1], patient_id=f"PAT-{n}")]]
    worker = _worker(FakeSource(pages), fhir)

    report = worker.run_cycle()

    assert report.ok and report.failures == 1 and sorted(fhir.studies_written()) == [A, C]
    assert order[:2] == ["transaction", "Endpoint alone"]  # refused whole, then the Endpoint before any half
    assert order.count("Endpoint alone") == 1
    assert len([key for key in fhir.resources if key.startswith("Endpoint/")]) == 1


def _study(fhir: FakeFhir, uid: str) -> dict[str, Any]:
    return next(r for r in fhir.resources.values() if _study_uid(r) == uid)


def test_an_endpoint_that_cannot_be_written_keeps_the_whole_batch_out_of_fhir() -> None:
    """Three bundles wait for the Endpoint: its write is tried by the check beside the read and once
    more by the batch, not again by every bundle."""
    fhir = FakeFhir()
    handle = fhir.handle
    puts: list[str] = []

    def refuse_the_endpoint(request: Any) -> Any:
        if request.method == "PUT" and request.url.path.startswith("/Endpoint/"):
            puts.append(request.url.path)
            return httpx.Response(422, json={"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]})
        return handle(request)

    fhir.handle = refuse_the_endpoint  # type: ignore[method-assign]
    pages = [
        study_entries(A, [1]),
        study_entries(B, [2], patient_id="PAT-2") + study_entries(C, [3], patient_id="PAT-3"),
    ]
    worker = _worker(FakeSource(pages), fhir, max_batch_entries=3, max_bundle_entries=2)  # a bundle per study

    report = worker.run_cycle()

    assert not report.ok and fhir.transactions == []
    assert 1 <= len(puts) <= 2
    assert worker.ctx.store.read_checkpoint("fake:feed") is None
    assert worker.ctx.store.failures() == []  # nothing recorded as the studies' failure


def test_an_endpoint_refused_in_the_first_transaction_and_alone_keeps_the_batch_out_of_fhir() -> None:
    fhir = FakeFhir()
    handle = fhir.handle
    refused: list[str] = []

    def refuse_the_endpoint(request: Any) -> Any:
        carried = request.method == "POST" and b'"resourceType":"Endpoint"' in request.content
        if carried or (request.method == "PUT" and request.url.path.startswith("/Endpoint/")):
            refused.append("transaction" if carried else "alone")
            return httpx.Response(422, json={"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]})
        return handle(request)

    fhir.handle = refuse_the_endpoint  # type: ignore[method-assign]
    worker = _worker(FakeSource([study_entries(A, [1])]), fhir)

    report = worker.run_cycle()

    assert not report.ok and fhir.transactions == [] and refused[:2] == ["transaction", "alone"]
    assert worker.ctx.store.read_checkpoint("fake:feed") is None
    assert worker.ctx.store.failures() == []  # the Endpoint's failure is the batch's, not the study's


def test_a_batch_that_writes_nothing_still_waits_for_its_endpoint() -> None:
    """Deletes of a study FHIR does not hold write nothing; the batch is still checkpointed only once
    its Endpoint is written (here it cannot be: the cycle fails and the checkpoint stays)."""
    fhir = FakeFhir()
    handle = fhir.handle

    def refuse_the_endpoint(request: Any) -> Any:
        if request.method == "PUT" and request.url.path.startswith("/Endpoint/"):
            return httpx.Response(422, json={"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]})
        return handle(request)

    fhir.handle = refuse_the_endpoint  # type: ignore[method-assign]
    deletes = [entry(n, None, ChangeAction.DELETE, study=A, series=f"{A}.1", sop=f"{A}.1.{n}") for n in (1, 2)]
    worker = _worker(FakeSource([deletes[:1], deletes[1:]]), fhir, max_batch_entries=2)

    report = worker.run_cycle()

    assert not report.ok and fhir.transactions == []
    assert worker.ctx.store.read_checkpoint("fake:feed") is None


def _interleaved_feed() -> FakeSource:
    """Four one-page batches (MaxBatchEntries 1); study A has an instance in the last three."""
    e, a, b, c, d = "1.2.3.5", A, B, C, "1.2.3.4"
    return FakeSource(
        [
            study_entries(e, [1], patient_id="PAT-E"),
            study_entries(a, [2]) + study_entries(b, [3], patient_id="PAT-B"),
            study_entries(a, [4]) + study_entries(c, [5], patient_id="PAT-C"),
            study_entries(a, [6]) + study_entries(d, [7], patient_id="PAT-D"),
        ]
    )


def _instance_count(fhir: FakeFhir, study_uid: str) -> int:
    (study,) = [
        r
        for k, r in fhir.resources.items()
        if k.startswith("ImagingStudy/") and study_uid in json.dumps(r["identifier"])
    ]
    return sum(len(s.get("instance", [])) for s in study.get("series", []))


def test_a_study_the_next_batch_continues_waits_for_it_and_is_written_once() -> None:
    source, fhir = _interleaved_feed(), FakeFhir()
    worker = _worker(source, fhir, max_batch_entries=1)
    checkpoint_seen: dict[str, str | None] = {}
    fhir.on_transaction.append(
        lambda bundle: checkpoint_seen.update(
            {uid: worker.ctx.store.read_checkpoint(source.name) for uid in map(study_uid_in, bundle["entry"]) if uid}
        )
    )

    report = worker.run_cycle()

    assert report.ok and report.caught_up and report.entries == 7
    assert fhir.studies_written().count(A) == 1 and _instance_count(fhir, A) == 3  # once, whole
    assert sorted(fhir.studies_written()) == sorted([A, B, C, "1.2.3.4", "1.2.3.5"])
    # Batches 2 and 3 were written while A waited: the checkpoint stayed before A's first entry.
    assert checkpoint_seen[C] == "1" and checkpoint_seen["1.2.3.4"] == "1"
    assert worker.ctx.store.read_checkpoint(source.name) == "4"


def test_a_worker_stopped_while_a_study_waits_replays_it_from_the_checkpoint_before_it() -> None:
    source, fhir = _interleaved_feed(), FakeFhir()
    store = memory_store()
    first = SourceWorker(make_context(source, fhir, store, max_batch_entries=1), WorkerState(), "host:1:a")
    fhir.on_transaction.append(lambda bundle: C in map(study_uid_in, bundle["entry"]) and first.ctx.stop_event.set())

    assert first.run_cycle().ok
    assert store.read_checkpoint(source.name) == "1"  # page 3 was written, A's two entries were not
    assert A not in fhir.studies_written()
    first.release()

    second = SourceWorker(make_context(source, fhir, store, max_batch_entries=1), WorkerState(), "host:2:b")
    assert second.run_cycle().caught_up

    assert source.reads.count("1") == 2  # read again from the checkpoint: nothing after it was trusted
    assert _instance_count(fhir, A) == 3 and fhir.studies_written().count(A) == 1
    assert store.read_checkpoint(source.name) == "4"


def test_a_study_going_on_in_every_batch_is_written_in_parts_so_the_checkpoint_moves_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A has an instance in each of 8 one-page batches: held at most 2 batches behind, then written."""
    monkeypatch.setattr(loop, "HELD_BATCHES_BEHIND", 2)
    others = [f"1.2.4.{n}" for n in range(8)]
    source = FakeSource(
        [study_entries(A, [n]) + study_entries(x, [20 + n], patient_id=f"PAT-{n}") for n, x in enumerate(others)]
    )
    fhir = FakeFhir()
    worker = _worker(source, fhir, max_batch_entries=1)
    saved: list[str] = []
    save_page = worker.ctx.store.save_page
    monkeypatch.setattr(
        worker.ctx.store,
        "save_page",
        lambda name, cursor, *a, **k: saved.append(cursor) or save_page(name, cursor, *a, **k),
    )

    report = worker.run_cycle()

    assert report.ok and report.caught_up
    assert saved == ["1", "1", "1", "4", "4", "4", "7", "8"]  # batch k saves a checkpoint >= k - 2
    assert fhir.studies_written().count(A) == 4 and _instance_count(fhir, A) == 8  # in parts, nothing lost
    assert sorted(fhir.studies_written()) == sorted([A] * 4 + others)


def test_a_cycles_first_batch_is_cut_from_the_next_batchs_first_page_without_waiting_for_the_rest() -> None:
    """Batch 2's second page is read only once batch 1's transaction has arrived. Its first page
    shows that A goes on: A is held back and written once; B and E go at once."""
    fhir = FakeFhir()
    first_sent = threading.Event()
    fhir.on_transaction.append(lambda bundle: first_sent.set())

    class SlowSecondBatch(FakeSource):
        def read_page(self, cursor: str | None) -> Page:
            if cursor == "3":
                assert first_sent.wait(WAIT), "batch 1 waited for all of batch 2's read"
            return super().read_page(cursor)

    e, d = "1.2.3.5", "1.2.3.4"
    source = SlowSecondBatch(
        [
            study_entries(e, [1], patient_id="PAT-E"),
            study_entries(A, [2]) + study_entries(B, [3], patient_id="PAT-B"),
            study_entries(A, [4]) + study_entries(C, [5], patient_id="PAT-C"),
            study_entries(d, [6], patient_id="PAT-D"),
        ]
    )
    worker = _worker(source, fhir, max_batch_entries=3)  # batches: pages 1-2, pages 3-4

    report = worker.run_cycle()

    assert report.ok and report.caught_up
    assert [study_uid_in(x) for x in fhir.transactions[0]["entry"] if study_uid_in(x)] == [e, B]
    assert sorted(fhir.studies_written()) == sorted([e, A, B, C, d])  # each once
    assert _instance_count(fhir, A) == 2


def _mapping_noted(monkeypatch: pytest.MonkeyPatch, on_map: Callable[[str], None]) -> None:
    mapping = bundles._map

    def noted(ctx: Any, job: bundles.StudyJob) -> Any:
        on_map(job.study_uid)
        return mapping(ctx, job)

    monkeypatch.setattr(bundles, "_map", noted)


def test_the_next_batch_is_mapped_while_this_batchs_transaction_is_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    fhir = FakeFhir()
    mapped: list[str] = []
    b_mapped = threading.Event()
    _mapping_noted(monkeypatch, lambda uid: (mapped.append(uid), uid == B and b_mapped.set()))
    held: list[bool] = []
    fhir.on_transaction.append(lambda bundle: held or held.append(b_mapped.wait(WAIT)))
    source = FakeSource(
        [study_entries(A, [1]), study_entries(B, [2], patient_id="PAT-2"), study_entries(C, [3], patient_id="PAT-3")]
    )
    worker = _worker(source, fhir, max_batch_entries=1)

    report = worker.run_cycle()

    assert report.ok and held == [True]  # batch 2's study was mapped while batch 1's transaction was held
    assert mapped.count(B) == 1 and mapped.count(C) == 1  # and used as mapped: not mapped again
    assert sorted(fhir.studies_written()) == [A, B, C]
    assert worker.ctx.store.read_checkpoint(source.name) == "3"


def test_a_study_whose_patient_this_batch_writes_is_mapped_after_it_with_the_version_it_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fhir = FakeFhir()
    applied: list[str] = []
    fhir.on_transaction.append(lambda bundle: applied.extend(u for u in map(study_uid_in, bundle["entry"]) if u))
    mapped_after: list[list[str]] = []
    _mapping_noted(monkeypatch, lambda uid: uid == B and mapped_after.append(list(applied)))
    source = FakeSource([study_entries(A, [1]), study_entries(B, [2])])  # one Patient, PAT-1
    worker = _worker(source, fhir, max_batch_entries=1)

    assert worker.run_cycle().ok

    assert mapped_after == [[A]]  # once, after batch 1's transaction reached FHIR
    second = fhir.transactions[1]["entry"]
    patient = [e["request"] for e in second if e["request"]["url"].startswith("Patient/")]
    assert patient == [] or all(r.get("ifMatch") == 'W/"1"' for r in patient)
    assert len([k for k in fhir.resources if k.startswith("Patient/")]) == 1
