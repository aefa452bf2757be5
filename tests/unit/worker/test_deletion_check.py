"""The per-cycle deletion check of reconcile.py: Orthanc's instance count, less the NewInstance
changes not synced yet, against the synced count; a full reconciliation only when they disagree
with the recorded baseline, and no decision while the feed moves."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from dicomcast.config.settings import DicomWebSettings
from dicomcast.dicom.orthanc import OrthancSource
from dicomcast.errors import TransientUpstreamError
from dicomcast.store import Store
from dicomcast.store.synced import SyncedIndex, SyncedKey
from dicomcast.worker import reconcile
from dicomcast.worker.context import SyncContext

DAY = timedelta(days=1)


class FakeOrthanc:
    """`/changes?last`, `/changes?since=` and `/statistics` answers, counted."""

    def __init__(self, last: int, instances: int, new_after: dict[int, int] | None = None) -> None:
        self.lasts = [last]
        self.instances = instances
        self.new_after = new_after or {}
        self.requests: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.url.path}?{request.url.query.decode()}")
        if request.url.path == "/statistics":
            return httpx.Response(200, json={"CountInstances": self.instances, "CountStudies": 1})
        if "last" in request.url.params:
            seq = self.lasts.pop(0) if len(self.lasts) > 1 else self.lasts[0]
            return httpx.Response(200, json={"Changes": [{"Seq": seq}], "Done": True, "Last": seq})
        since = int(request.url.params["since"])
        count = self.new_after.get(since, 0)
        changes = [{"Seq": since + n + 1, "ChangeType": "NewInstance"} for n in range(count)]
        return httpx.Response(200, json={"Changes": changes, "Done": True, "Last": since + count})


def _ctx(store: Store, orthanc: FakeOrthanc, synced: int, checkpoint: int) -> SyncContext:
    client = httpx.Client(base_url="http://orthanc.test", transport=httpx.MockTransport(orthanc.handle))
    source = OrthancSource(DicomWebSettings(Endpoint="http://orthanc.test"), client)
    keys = [SyncedKey("1.2.3", "1.2.3.1", f"1.2.3.1.{n}") for n in range(synced)]
    SyncedIndex(store.engine).remember(source.name, keys)
    store.save_page(source.name, str(checkpoint))
    store.record_reconciled(source.name, datetime(2999, 1, 1, tzinfo=UTC))  # the safety net is not due
    return SyncContext(source=source, fhir=None, store=store, options=None, stop_event=threading.Event())  # type: ignore[arg-type]


@pytest.fixture
def full_passes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    ran: list[str] = []

    def fake(ctx: SyncContext) -> reconcile.ReconcileReport:
        ran.append(ctx.source.name)
        return reconcile.ReconcileReport(ctx.source.name, ran=True)

    monkeypatch.setattr(reconcile, "reconcile", fake)
    return ran


def test_equal_counts_cost_three_requests_and_no_full_pass(store: Store, full_passes: list[str]) -> None:
    orthanc = FakeOrthanc(last=40, instances=12)
    assert reconcile.reconcile_after_cycle(_ctx(store, orthanc, synced=12, checkpoint=40), DAY)
    assert full_passes == []
    assert sorted(orthanc.requests) == ["/changes?last=", "/changes?last=", "/statistics?"]


def test_fewer_instances_in_orthanc_start_a_full_pass_and_settle_the_baseline(
    store: Store, full_passes: list[str]
) -> None:
    ctx = _ctx(store, FakeOrthanc(last=40, instances=9), synced=12, checkpoint=40)
    assert reconcile.reconcile_after_cycle(ctx, DAY)
    assert len(full_passes) == 1
    # the fake pass deleted nothing: 3 remembered instances stay unexplained, now the baseline
    assert store.reconciliation_baseline(ctx.source.name) == -3
    assert reconcile.reconcile_after_cycle(ctx, DAY)
    assert len(full_passes) == 1  # same counts as the baseline: no second pass


def test_instances_not_synced_yet_are_not_deletions(store: Store, full_passes: list[str]) -> None:
    orthanc = FakeOrthanc(last=45, instances=15, new_after={40: 3})  # 3 NewInstance changes after Seq 40
    assert reconcile.reconcile_after_cycle(_ctx(store, orthanc, synced=12, checkpoint=40), DAY)
    assert full_passes == []


def test_a_new_instance_hides_no_deletion(store: Store, full_passes: list[str]) -> None:
    orthanc = FakeOrthanc(last=45, instances=12, new_after={40: 1})  # one new, one deleted: 12 either way
    assert reconcile.reconcile_after_cycle(_ctx(store, orthanc, synced=12, checkpoint=40), DAY)
    assert len(full_passes) == 1


def test_a_moving_feed_leaves_it_undecided(store: Store, full_passes: list[str]) -> None:
    orthanc = FakeOrthanc(last=40, instances=9)
    orthanc.lasts = [40, 41]  # a change arrived between the two reads of the feed's end
    assert not reconcile.reconcile_after_cycle(_ctx(store, orthanc, synced=12, checkpoint=40), DAY)
    assert full_passes == []


def test_an_unanswered_check_falls_back_to_the_safety_net(
    store: Store, full_passes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _ctx(store, FakeOrthanc(last=40, instances=9), synced=12, checkpoint=40)

    def down(_: Any) -> int:
        raise TransientUpstreamError("Orthanc", "/statistics: ConnectError")

    monkeypatch.setattr(OrthancSource, "instance_count", down)
    assert reconcile.reconcile_after_cycle(ctx, DAY)
    assert full_passes == []  # not due: nothing to decide on
    store.record_reconciled(ctx.source.name, datetime(2000, 1, 1, tzinfo=UTC))
    assert reconcile.reconcile_after_cycle(ctx, DAY)
    assert len(full_passes) == 1  # due: the full pass runs without the counts
