"""Replay of recorded failures (worker/replay.py) without servers: a fake DICOM source, FHIR through
httpx.MockTransport, an in-memory store. Each outcome: resolved (the data was corrected at the
source), still failing (one more attempt on the same row), not now (a dependency failed: the row
untouched), instance gone, entry unreadable, source not configured; the checkpoint never moves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dicomcast.dicom.models import ChangeAction, ChangeEntry, DicomJson
from dicomcast.errors import TransientUpstreamError
from dicomcast.failures import EntryFailure, FailureClass
from dicomcast.store import Store
from dicomcast.store.models import Failure
from dicomcast.worker.context import SyncContext
from dicomcast.worker.page import sync_entries
from dicomcast.worker.replay import ReplayOutcome, replay_failure
from tests.unit.mapping.builders import STUDY, entry, instance
from tests.unit.worker.fakes import FakeFhir, FakeSource, make_context, memory_store


@dataclass
class HeldSource(FakeSource):
    """A DICOM server holding instances now (SOP Instance UID -> DICOM JSON), read by WADO-RS."""

    held: dict[str, DicomJson] = field(default_factory=dict)
    unreachable: bool = False
    metadata_reads: list[str] = field(default_factory=list)

    def read_metadata(self, change: ChangeEntry) -> DicomJson | None:
        self.metadata_reads.append(change.sop_instance_uid)
        if self.unreachable:
            raise TransientUpstreamError("DICOMweb", "GET metadata: ConnectError")
        return self.held.get(change.sop_instance_uid)


def _setup(source: HeldSource, fhir: FakeFhir | None = None) -> tuple[SyncContext, FakeFhir]:
    fhir = fhir or FakeFhir()
    return make_context(source, fhir, memory_store(), retry_attempts=1), fhir  # one try: no backoff sleep


def _recorded(store: Store, source: str, change: ChangeEntry, failure_class: FailureClass) -> Failure:
    store.record_failures(source, [EntryFailure(change, failure_class, "Modality missing")])
    [row] = store.failures(source=source)
    return row


def _instance() -> tuple[dict[str, Any], ChangeEntry]:
    data = instance(1, 1)
    return data, entry(5, None, study=STUDY, series=data["0020000E"]["Value"][0], sop=data["00080018"]["Value"][0])


def _uid(data: dict[str, Any]) -> str:
    return str(data["00080018"]["Value"][0])


def test_a_failure_whose_instance_was_corrected_is_synced_and_resolved() -> None:
    data, change = _instance()
    source = HeldSource([], held={_uid(data): data})
    ctx, fhir = _setup(source)
    row = _recorded(ctx.store, source.name, change, FailureClass.DICOM)

    replayed = replay_failure({source.name: ctx}, row)

    assert replayed.resolved and replayed.outcome is ReplayOutcome.RESOLVED
    assert source.metadata_reads == [_uid(data)]  # re-read from the DICOM server, not the stored row
    assert fhir.studies_written() == [STUDY]
    assert ctx.store.failures(source=source.name) == []  # open failures: none
    assert ctx.store.read_checkpoint(source.name) is None  # the feed's checkpoint never moves


def test_a_failure_that_fails_again_gets_one_more_attempt_on_its_row() -> None:
    data, change = _instance()
    source = HeldSource([], held={_uid(data): data})
    fhir = FakeFhir()
    fhir.refuse_study.add(STUDY)
    ctx, _ = _setup(source, fhir)
    row = _recorded(ctx.store, source.name, change, FailureClass.FHIR)

    replayed = replay_failure({source.name: ctx}, row)

    assert replayed.outcome is ReplayOutcome.STILL_FAILING and replayed.detail
    [again] = ctx.store.failures(source=source.name)
    assert again.id == row.id and again.attempts == 2 and again.resolved_at is None


def test_a_dependency_that_fails_leaves_the_row_untouched() -> None:
    data, change = _instance()
    source = HeldSource([], held={_uid(data): data}, unreachable=True)
    ctx, fhir = _setup(source)
    row = _recorded(ctx.store, source.name, change, FailureClass.DICOM)

    replayed = replay_failure({source.name: ctx}, row)

    assert replayed.outcome is ReplayOutcome.NOT_NOW and "ConnectError" in replayed.detail
    [same] = ctx.store.failures(source=source.name)
    assert same.attempts == 1 and fhir.transactions == []


def test_an_instance_the_server_no_longer_holds_is_gone() -> None:
    _, change = _instance()
    source = HeldSource([])
    ctx, fhir = _setup(source)
    row = _recorded(ctx.store, source.name, change, FailureClass.DICOM)

    assert replay_failure({source.name: ctx}, row).outcome is ReplayOutcome.INSTANCE_GONE
    assert fhir.transactions == [] and len(ctx.store.failures(source=source.name)) == 1


def test_a_delete_is_replayed_without_reading_the_instance() -> None:
    data, change = _instance()
    source = HeldSource([])
    ctx, fhir = _setup(source)
    sync_entries(ctx, [entry(1, data)])  # the study in FHIR, as the feed wrote it
    assert [k for k in fhir.resources if k.startswith("ImagingStudy/")]
    delete = ChangeEntry(
        sequence=6,
        action=ChangeAction.DELETE,
        study_uid=change.study_uid,
        series_uid=change.series_uid,
        sop_instance_uid=change.sop_instance_uid,
    )
    row = _recorded(ctx.store, source.name, delete, FailureClass.FHIR)

    replayed = replay_failure({source.name: ctx}, row)

    assert replayed.outcome is ReplayOutcome.RESOLVED and source.metadata_reads == []
    studies = [r for k, r in fhir.resources.items() if k.startswith("ImagingStudy/")]
    assert all(_uid(data) not in str(study.get("series", [])) for study in studies)  # the instance is gone


def test_rows_that_cannot_be_replayed_say_why() -> None:
    _, change = _instance()
    source = HeldSource([])
    ctx, _ = _setup(source)
    row = _recorded(ctx.store, source.name, change, FailureClass.DICOM)
    unknown_action = _recorded(ctx.store, "other", change, FailureClass.FEED)
    unknown_action.action = "unknown"

    assert replay_failure({}, row).outcome is ReplayOutcome.SOURCE_NOT_CONFIGURED
    assert replay_failure({"other": ctx}, unknown_action).outcome is ReplayOutcome.ENTRY_UNREADABLE
    assert source.metadata_reads == []
