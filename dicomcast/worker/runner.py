"""Runs the sources' cycles: once (until caught up), or on the APScheduler schedule until stopped.

Each source has its own job (max_instances=1, coalesce): back to back while it is behind
(DicomCastWorker:PollIntervalDuringCatchup), every DicomCastWorker:PollInterval when caught up.
SIGTERM/SIGINT set the stop event: the page in hand finishes and is checkpointed, leases are
released, and the process exits within DicomCastWorker:ShutdownGracePeriod.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from dicomcast.config.settings import WorkerSettings
from dicomcast.errors import DicomcastError
from dicomcast.logs import get_logger
from dicomcast.worker.availability import Availability, Backoff
from dicomcast.worker.context import SyncContext
from dicomcast.worker.lease import make_owner
from dicomcast.worker.loop import CycleReport, SourceWorker
from dicomcast.worker.reconcile import reconcile_after_cycle
from dicomcast.worker.state import WorkerState

log = get_logger("dicomcast.runner")


UNDECIDED_RETRIES = 3  # run --once: cycles to sync again when the deletion check found the feed moving


def run_once(workers: list[SourceWorker], reconcile_interval: timedelta | None = None) -> list[CycleReport]:
    """Each source until caught up, its deletions applied (reconcile.py), then the leases released
    (the tests' and `run --once`'s mode)."""
    interval = WorkerSettings().reconcile_interval if reconcile_interval is None else reconcile_interval
    reports = []
    for worker in workers:
        for _ in range(UNDECIDED_RETRIES):
            report = worker.run_cycle()
            if _reconcile_after(worker, report, interval):
                break
        reports.append(report)
        worker.release()
    return reports


def _reconcile_after(worker: SourceWorker, report: CycleReport, interval: timedelta) -> bool:
    """reconcile.py: deletions the feed cannot report, by the lease holder, after a good cycle.
    False when its check could not decide because the feed moved (sync again, then check)."""
    if not report.ok or report.waiting_for_lease or worker.ctx.stop_event.is_set():
        return True
    try:
        return reconcile_after_cycle(worker.ctx, interval, worker.availability)
    except DicomcastError as exc:  # the store is down: the next cycle says so too
        log.error("reconcile skipped", source=worker.name, error=str(exc))
        return True


class Runner:
    def __init__(self, workers: list[SourceWorker], settings: WorkerSettings, stop_event: threading.Event) -> None:
        self.workers = workers
        self.settings = settings
        self.stop_event = stop_event
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.backoffs = {worker.name: Backoff() for worker in workers}

    def run(self) -> None:
        """Block until stopped; one failing source never stops the others."""
        for worker in self.workers:
            self._schedule(worker, delay=timedelta(0))
        self.scheduler.start()
        log.info("started", sources=[w.name for w in self.workers])
        while not self.stop_event.wait(0.5):
            pass
        self._shutdown()

    def _schedule(self, worker: SourceWorker, delay: timedelta) -> None:
        if self.stop_event.is_set():
            return
        self.scheduler.add_job(
            self._cycle,
            DateTrigger(run_date=datetime.now(UTC) + delay),
            args=[worker],
            id=f"poll:{worker.name}",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    def _cycle(self, worker: SourceWorker) -> None:
        """One cycle, then the next is scheduled whatever happened (a job that raised would end
        the source's schedule). Failed cycles back off exponentially, up to availability.RETRY_CAP."""
        delay = self.settings.poll_interval
        try:
            report = worker.run_cycle()
            _reconcile_after(worker, report, self.settings.reconcile_interval)
            delay = self._delay_after(worker, report)
        except Exception:  # run_cycle reports its errors; this is a bug in the code around it
            log.exception("cycle scheduling failed; retrying at the poll interval", source=worker.name)
        finally:
            self._schedule(worker, delay)

    def _delay_after(self, worker: SourceWorker, report: CycleReport) -> timedelta:
        backoff = self.backoffs[worker.name]
        if not report.ok:
            return max(self.settings.poll_interval, timedelta(seconds=backoff.next_delay()))
        backoff.reset()
        if report.waiting_for_lease:
            return min(self.settings.poll_interval, self.settings.lease_duration / 2)
        if not report.caught_up:
            return self.settings.poll_interval_during_catchup
        return self.settings.poll_interval

    def _shutdown(self) -> None:
        """Let the page in hand finish within the grace period; past it, abandon it (its checkpoint
        was not advanced, so it is simply done again by the next run)."""
        started = time.monotonic()
        waiter = threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True)
        waiter.start()
        waiter.join(self.settings.shutdown_grace_period.total_seconds())
        if waiter.is_alive():
            log.warning("grace period over: work in hand abandoned, checkpoint kept")
        for worker in self.workers:
            try:
                worker.release()
            except DicomcastError as exc:  # the store is down: the lease simply expires
                log.warning("lease not released", source=worker.name, error=str(exc))
        log.info("stopped", seconds=round(time.monotonic() - started, 2))


def install_signal_handlers(stop_event: threading.Event) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", signal=signal.Signals(signum).name)
        stop_event.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def make_workers(
    contexts: list[SyncContext],
    state: WorkerState,
    lease_duration: timedelta,
    owner_factory: Callable[[], str] = make_owner,
    availability: Availability | None = None,
) -> list[SourceWorker]:
    owner = owner_factory()
    board = availability or Availability()
    return [SourceWorker(ctx, state, owner, lease_duration.total_seconds(), board) for ctx in contexts]
