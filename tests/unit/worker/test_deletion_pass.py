"""The deletion pass of worker/reconcile.py over a fake Orthanc's QIDO-RS (dicom/inventory.py): one
listing per remembered study, `delete` entries for exactly the remembered instances it no longer
lists, the synced index told, and upstream trouble never read as a deletion."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import httpx
import pytest

from dicomcast.config.settings import DicomWebSettings
from dicomcast.dicom.models import ChangeAction, ChangeEntry
from dicomcast.dicom.orthanc import OrthancSource
from dicomcast.store import Store
from dicomcast.store.synced import SyncedKey
from dicomcast.worker import reconcile
from dicomcast.worker.context import SyncContext, Tuning
from dicomcast.worker.page import SyncResult

STUDIES = {"1.2.1": 3, "1.2.2": 2}  # study UID -> instances synced


def _item(study: str, sop: str) -> dict[str, object]:
    return {
        "0020000D": {"vr": "UI", "Value": [study]},
        "0020000E": {"vr": "UI", "Value": [f"{study}.1"]},
        "00080018": {"vr": "UI", "Value": [sop]},
    }


class FakeQido:
    """Orthanc's `/dicom-web/studies/{uid}/instances`, holding what `held` says; counted."""

    def __init__(self, held: dict[str, list[str]], broken: bool = False) -> None:
        self.held, self.broken, self.paths = held, broken, []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if self.broken:
            return httpx.Response(200, text="<html>maintenance</html>", headers={"content-type": "text/html"})
        study = request.url.path.split("/")[3]
        if study not in self.held:
            return httpx.Response(404)
        return httpx.Response(200, json=[_item(study, sop) for sop in self.held[study]])


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[ChangeEntry]:
    """What the pass hands to the write path (FHIR is not part of this test)."""
    entries: list[ChangeEntry] = []

    def fake(ctx: SyncContext, batch: Sequence[ChangeEntry]) -> SyncResult:
        entries.extend(batch)
        return SyncResult()

    monkeypatch.setattr(reconcile, "write_reconciled", fake)
    return entries


def _ctx(store: Store, orthanc: FakeQido) -> SyncContext:
    client = httpx.Client(base_url="http://orthanc.test", transport=httpx.MockTransport(orthanc.handle))
    source = OrthancSource(DicomWebSettings(Endpoint="http://orthanc.test"), client)
    keys = [SyncedKey(s, f"{s}.1", f"{s}.1.{n}") for s, count in STUDIES.items() for n in range(count)]
    store.synced.remember(source.name, keys)
    tuning = Tuning(retry_attempts=1)
    return SyncContext(source=source, fhir=None, store=store, options=None, tuning=tuning, stop_event=threading.Event())  # type: ignore[arg-type]


def test_remembered_instances_not_listed_become_deletes_and_are_forgotten(
    store: Store, written: list[ChangeEntry]
) -> None:
    orthanc = FakeQido({"1.2.1": ["1.2.1.1.0", "1.2.1.1.2", "1.2.1.1.9"]})  # 1.2.1.1.1 and study 1.2.2 gone
    ctx = _ctx(store, orthanc)
    report = reconcile.reconcile(ctx)
    assert report.ok and report.studies_checked == 2 and report.instances_deleted == 3
    assert report.qido_requests == len(orthanc.paths) == 2  # one listing per study of up to 200 instances
    assert {(e.action, e.study_uid, e.sop_instance_uid) for e in written} == {
        (ChangeAction.DELETE, "1.2.1", "1.2.1.1.1"),
        (ChangeAction.DELETE, "1.2.2", "1.2.2.1.0"),
        (ChangeAction.DELETE, "1.2.2", "1.2.2.1.1"),
    }
    assert store.synced.count(ctx.source.name) == 2  # the instances still there stay remembered


def test_an_unreadable_listing_is_never_a_deletion(store: Store, written: list[ChangeEntry]) -> None:
    ctx = _ctx(store, FakeQido({}, broken=True))
    report = reconcile.reconcile(ctx)
    assert not report.ok and report.instances_deleted == 0
    assert written == [] and store.synced.count(ctx.source.name) == 5
