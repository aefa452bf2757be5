"""The sync loop of one source: lease → page → studies → checkpoint, until caught up.

Shape after arq: `run_cycle()` is one poll iteration (the tests' run-once mode); the runner calls it
on the APScheduler schedule. A stop request lets the page in hand finish and be checkpointed.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import NoReturn

from dicomcast import telemetry
from dicomcast.dicom.models import ChangeEntry, Page
from dicomcast.errors import DicomcastError, LeaseLostError
from dicomcast.failures import EntryFailure, FailureClass
from dicomcast.fhir.mapping.types import PatientKey
from dicomcast.http import json_bytes_read
from dicomcast.logs import get_logger
from dicomcast.store.repository import LeaseTerm
from dicomcast.worker import batch_lookups, endpoints, hooks, metrics, premap, study_cut
from dicomcast.worker.availability import Availability, safe_reason
from dicomcast.worker.batch_lookups import EarlyLookups, StudyKey, Written
from dicomcast.worker.carry_over import initial_cursor
from dicomcast.worker.context import SyncContext, Tuning
from dicomcast.worker.lease import dead_predecessor
from dicomcast.worker.page import SyncResult, sync_entries
from dicomcast.worker.premap import Ahead
from dicomcast.worker.readahead import BatchLimit, BatchReader, ReadPage, entries_of
from dicomcast.worker.reconcile import remember_entries
from dicomcast.worker.state import WorkerState
from dicomcast.worker.study_cut import Cut, Held, Limits

log = get_logger("dicomcast.worker")
# Entries held back for the next batch, at most, per MaxBatchEntries: a large study interleaved with
# others (1,500 instances while three modalities store beside it) is still written once.
HELD_PER_BATCH = 4
# Batches the checkpoint may stay behind what is written, at most: a restart reads at most this many
# batches again (a study going on for longer is written in parts).
HELD_BATCHES_BEHIND = 8
# A batch starts by renewing the lease unless it was renewed less than this share of its duration ago
# (by the cycle's start, or the previous batch's checkpoint, whose transaction renews it): a lease
# only a dead worker's successor may take early cannot have been lost since, and each renewal is a
# store commit (fsync'd), one per batch for nothing when batches follow each other quickly.
RENEWED_RECENTLY = 0.1


@dataclass
class CycleReport:
    source: str
    pages: int = 0
    entries: int = 0
    failures: int = 0
    caught_up: bool = False
    ok: bool = True
    waiting_for_lease: bool = False
    error: str | None = None


class SourceWorker:
    def __init__(
        self,
        ctx: SyncContext,
        state: WorkerState,
        owner: str,
        lease_duration_s: float = 60.0,
        availability: Availability | None = None,
    ) -> None:
        self.ctx = ctx
        self.state = state
        self.owner = owner
        self.lease_duration_s = lease_duration_s
        self.name = ctx.source.name
        self.availability = availability or Availability()
        self._renewed_at = -float("inf")  # time.monotonic() before the last renewal known to have held

    def run_cycle(self) -> CycleReport:
        """Sync until caught up (or stopped). Never raises for upstream trouble: reports it. A failure
        is logged when it starts or changes (availability.py), not on every cycle it lasts."""
        report = CycleReport(self.name)
        status = self.state.status(self.name)
        reason = None
        try:
            if self._hold_lease():
                self._sync_until_caught_up(report)
            else:
                report.waiting_for_lease = True  # a hot standby: alive, not stuck
        except DicomcastError as exc:
            report.ok, report.error, reason = False, str(exc), safe_reason(exc)
            self.availability.down(f"source {self.name}", exc)
        except Exception as exc:  # a bug must not silently end this source's schedule
            report.ok, report.error = False, f"unexpected {type(exc).__name__}"
            reason = report.error
            log.exception("cycle failed unexpectedly; checkpoint kept, retrying next cycle", source=self.name)
        if report.ok:
            self.availability.up(f"source {self.name}")
        status.last_cycle_ok, status.last_cycle_at, status.last_error = report.ok, datetime.now(UTC), reason
        metrics.CYCLE_OK.labels(self.name).set(1 if report.ok else 0)
        return report

    def release(self) -> None:
        if self.state.status(self.name).lease_held:
            self.ctx.store.release_lease(self.name, self.owner)
            self.state.status(self.name).lease_held = False
            self._renewed_at = -float("inf")

    def _hold_lease(self) -> bool:
        status = self.state.status(self.name)
        take_from = None
        if not status.lease_held:  # a holder only renews; who holds it matters to a worker taking it
            lease = self.ctx.store.lease(self.name)
            take_from = lease.owner if lease and dead_predecessor(lease.owner, self.owner) else None
        asked = time.monotonic()
        held = self.ctx.store.acquire_lease(self.name, self.owner, self._term().duration, take_from=take_from)
        self._renewed_at = asked if held else -float("inf")
        if status.lease_held and not held:
            self._lost_lease()
        if held and not status.lease_held:
            log.info("lease acquired", source=self.name, took_over=bool(take_from))
        status.lease_held = held
        return held

    def _renew(self) -> None:
        """The lease renewed for the next batch, unless it was a moment ago (RENEWED_RECENTLY)."""
        if time.monotonic() - self._renewed_at >= self.lease_duration_s * RENEWED_RECENTLY:
            self._hold_lease()

    def _term(self) -> LeaseTerm:
        return LeaseTerm(self.owner, timedelta(seconds=self.lease_duration_s))

    def _lost_lease(self) -> NoReturn:
        self.state.status(self.name).lease_held = False  # so the next cycles wait as a standby instead of failing
        self._renewed_at = -float("inf")
        raise LeaseLostError(f"{self.name}: lease taken by another worker; this one stops writing")

    def _sync_until_caught_up(self, report: CycleReport) -> None:
        cursor = self.ctx.store.read_checkpoint(self.name) or initial_cursor(self.ctx)
        # The next batch is read, and what FHIR holds for it looked up, while this one is written.
        tuning = self.ctx.tuning
        reader = BatchReader(
            self._read_page,
            BatchLimit(tuning.max_batch_entries, tuning.max_batch_bytes),
            prepare=lambda batch: batch_lookups.now(self.ctx, batch.entries),
            prepare_first=lambda page: batch_lookups.start(self.ctx, page.entries),
        )
        written: Written | None = None
        held, saved = Held(), cursor
        ahead: Ahead | None = None
        while not self.ctx.stop_event.is_set():
            page, early = reader.read_prepared(cursor)
            hooks.reached("page-read")
            self._renew()  # every batch; raises if another worker took it
            # Studies the next batch continues wait for it, and the checkpoint stops before them.
            prepared = premap.cut_of(ahead, page)
            batch = prepared or self._cut(reader, page, cursor, held)
            remember_entries(self.ctx, batch.entries)  # reconcile.py: what was synced, for deletions the feed loses
            started = time.perf_counter()
            nexts: list[Ahead | None] = []
            with telemetry.span("dicomcast.page", source=self.name, entries=len(batch.entries)) as note:
                # Lookups made beside the previous batch's writes see them only through `written`.
                result = sync_entries(
                    self.ctx,
                    batch.entries,
                    early=early,
                    carried=written,
                    mapped=ahead.mapped if prepared is not None and ahead is not None else None,
                    meanwhile=None if page.caught_up else partial(self._prepare, reader, page, batch, nexts),
                )
                written, ahead = result.written, (nexts[0] if nexts else None)
                note(studies=len(result.studies), failures=len(result.failures), caught_up=page.caught_up)
            failures = self._failures(page, result)
            hooks.reached("before-checkpoint")  # a seam for the crash-safety tests (hooks.py)
            # A worker that lost its lease during the page does not checkpoint it (checked and
            # renewed in the checkpoint's own transaction).
            asked = time.monotonic()
            if not self.ctx.store.save_page(self.name, batch.checkpoint, failures, lease=self._term()):
                self._lost_lease()
            self._renewed_at = asked
            hooks.reached("after-checkpoint")
            self._account(page, batch, result, failures, time.perf_counter() - started, saved, report)
            cursor, held, saved = page.next_cursor, batch.held, batch.checkpoint
            if page.caught_up:
                report.caught_up = True
                return

    def _held_limits(self, batch: Page) -> Limits:
        return held_limits(self.ctx.tuning, batch)

    def _cut(self, reader: BatchReader[EarlyLookups], page: Page, cursor: str | None, held: Held) -> Cut:
        """The batch cut without waiting for all of the next one's read (a cycle's first batch:
        later ones are cut while the one before is written, premap.py): if it is not read yet, from
        its first page. A study the next batch continues only after that page is written twice (in
        part, then whole); what is written and checkpointed is right either way."""
        following = reader.following() if reader.following_read() else reader.following_start()
        return study_cut.cut(page, cursor, held, following.entries if following else None, self._held_limits(page))

    def _prepare(
        self,
        reader: BatchReader[EarlyLookups],
        page: Page,
        batch: Cut,
        into: list[Ahead | None],
        touched: dict[StudyKey, list[PatientKey]],
    ) -> None:
        """While this batch's transactions are in flight: the next batch cut and mapped (premap.py)."""
        if self.ctx.stop_event.is_set():
            return  # no next batch: the checkpoint is saved without waiting for its reads
        into.append(premap.prepare(self.ctx, reader, page.next_cursor, batch.held, touched, self._held_limits))

    def _read_page(self, cursor: str | None) -> Page:
        page = self.ctx.retry(lambda: _measured(self.ctx.source.read_page, cursor))
        endpoints.prefetch(self.ctx, page.entries)  # a new partition's Endpoint, beside the batch's next pages
        return page

    def _failures(self, page: Page, result: SyncResult) -> list[EntryFailure]:
        unreadable = [EntryFailure(entry, FailureClass.FEED, entry.reason) for entry in page.unreadable]
        return unreadable + result.failures

    def _account(
        self,
        page: Page,
        batch: Cut,
        result: SyncResult,
        failures: list[EntryFailure],
        seconds: float,
        previous: str | None,
        report: CycleReport,
    ) -> None:
        report.pages += 1
        report.entries += len(batch.entries)
        report.failures += len(failures)
        self._count_entries(page, batch.entries, failures)
        sequence = self.ctx.source.cursor_sequence(batch.checkpoint)
        if sequence is not None:  # every kind of cursor (Azure v2's too) says its sequence
            metrics.CHECKPOINT.labels(self.name).set(sequence)
        self.state.progressed(self.name)
        self.state.status(self.name).checkpoint = batch.checkpoint
        log.info(
            "page",
            source=self.name,
            after=self.ctx.source.describe_cursor(previous),
            to=self.ctx.source.describe_cursor(batch.checkpoint),
            read_to=self.ctx.source.describe_cursor(page.next_cursor),
            entries=len(batch.entries),
            held=batch.held_entries,
            skipped=len(page.skipped),
            unreadable=len(page.unreadable),
            studies=len(result.studies),
            written=sum(1 for s in result.studies if s.written),
            failures=len(failures),
            caught_up=page.caught_up,
            ms=round(seconds * 1000, 1),
        )

    def _count_entries(self, page: Page, entries: Sequence[ChangeEntry], failures: list[EntryFailure]) -> None:
        """Each entry handled counted once by outcome (synced, failed, skipped); failures and skips logged."""
        failed = {(f.entry.sequence, f.entry.sop_instance_uid) for f in failures}
        for unreadable in page.unreadable:
            metrics.ENTRIES.labels(self.name, unreadable.action, "failed").inc()
        outcomes = Counter(
            (entry.action.value, "failed" if (entry.sequence, entry.sop_instance_uid) in failed else "synced")
            for entry in entries
        )
        for (action, outcome), count in outcomes.items():  # once per label set: a batch has a thousand entries
            metrics.ENTRIES.labels(self.name, action, outcome).inc(count)
            if outcome == "synced":
                metrics.INSTANCES.labels(self.name, action).inc(count)
        for failure in failures:
            metrics.FAILURES.labels(self.name, failure.failure_class).inc()
            log.error("entry failed", source=self.name, entry=failure.entry.describe(), reason=failure.reason)
        for entry, why in page.skipped:
            metrics.ENTRIES.labels(self.name, entry.action.value, "skipped").inc()
            log.info("entry skipped", source=self.name, sequence=entry.sequence, reason=why)


def held_limits(tuning: Tuning, batch: Page) -> Limits:
    """HELD_PER_BATCH batches' worth of entries: fewer where `batch` was bound by its bytes
    (instances with much metadata), so the entries held stay bounded in memory too."""
    per_batch = tuning.max_batch_entries if batch.size < tuning.max_batch_bytes else max(1, entries_of(batch))
    return Limits(HELD_PER_BATCH * per_batch, HELD_BATCHES_BEHIND)


def _measured(read_page: ReadPage, cursor: str | None) -> Page:
    """The page with its size: the JSON its source read for it, in this thread (http.py)."""
    before = json_bytes_read()
    page = read_page(cursor)
    return dataclasses.replace(page, size=json_bytes_read() - before)
