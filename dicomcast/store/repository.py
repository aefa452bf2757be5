"""Reads and writes of the store, each in a short transaction: checkpoints, failures, leases, the
synced-instance index, reconciliation runs, repair runs' resume points, the status report and a
liveness ping."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from dicomcast.dicom.models import ChangeEntry, UnreadableEntry, recordable_uid
from dicomcast.errors import StoreError
from dicomcast.failures import EntryFailure
from dicomcast.store import statements as sql
from dicomcast.store.db import open_existing
from dicomcast.store.models import (
    ACTION_LENGTH,
    PARTITION_LENGTH,
    Checkpoint,
    Failure,
    Lease,
    Reconciliation,
    RepairRun,
    aware,
)
from dicomcast.store.status import read_status
from dicomcast.store.synced import SyncedIndex

MAX_MESSAGE = 2000


@dataclass(frozen=True)
class LeaseTerm:
    """Who holds a source's lease, and for how long a renewal keeps it."""

    owner: str
    duration: timedelta


@dataclass(frozen=True)
class ResumePoint:
    """A repairing reconcile's progress: done up to (`partition_key`, `study_uid`) for these filters."""

    fingerprint: str
    partition_key: str
    study_uid: str


def _now() -> datetime:
    return datetime.now(UTC)


def _action(entry: ChangeEntry | UnreadableEntry) -> str:
    return entry.action if isinstance(entry.action, str) else entry.action.value


def _fitted(value: str | None, length: int) -> str | None:
    """Values that come from a feed are cut to their column, so that a write never fails on them."""
    return value if value is None or len(value) <= length else value[: length - 3] + "..."


class Store:
    """The repository over one engine. Methods raise StoreError on database trouble."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = _now) -> None:
        self.engine = engine
        self._clock = clock  # lease expiry is judged by it (tests turn it instead of sleeping)
        self.synced = SyncedIndex(engine)  # which instances each source delivered (store/synced.py)

    @classmethod
    def open_existing(cls, connection_string: str) -> Store:
        """The store if it exists and is migrated (never creates or migrates it); StoreError otherwise."""
        return cls(open_existing(connection_string))

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> str | None:
        """None when the store answers a trivial query; else what went wrong, without the URL."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not reachable" to a probe
            return f"store unreachable: {type(exc).__name__}"
        return None

    def status(self, now: datetime | None = None) -> dict[str, Any]:
        """Checkpoints, leases and open failures per source (`dicomcast status`)."""
        return read_status(self.engine, now or self._clock())

    # -- checkpoints ---------------------------------------------------------------------------
    def read_checkpoint(self, source: str) -> str | None:
        with self._connect() as connection:
            cursor: str | None = connection.execute(sql.read_checkpoint(), {"b_source": source}).scalar_one_or_none()
            return cursor

    def save_page(
        self, source: str, cursor: str, failures: Sequence[EntryFailure] = (), *, lease: LeaseTerm | None = None
    ) -> bool:
        """Advance the checkpoint and record the page's permanent failures in one transaction.

        With `lease`, only while its owner holds the source's lease, renewed in that transaction:
        a worker whose lease was taken cannot move the checkpoint, not even in the moment between a
        renewal and the write. False, with nothing written, when another worker holds it."""
        with self._begin() as connection:
            if lease is not None and not self._renewed(connection, source, lease):
                return False
            for failure in failures:
                _record_failure(connection, source, failure)
            _write_checkpoint(connection, source, cursor)
        return True

    def _renewed(self, connection: Connection, source: str, lease: LeaseTerm) -> bool:
        expires = self._clock() + lease.duration
        result = connection.execute(
            sql.renew_lease(), {"b_source": source, "b_owner": lease.owner, "b_expires": expires}
        )
        return bool(result.rowcount)

    def record_failures(self, source: str, failures: Sequence[EntryFailure]) -> None:
        """Record permanent failures without moving the checkpoint (replays, reconciliation)."""
        with self._begin() as connection:
            for failure in failures:
                _record_failure(connection, source, failure)

    def set_checkpoint(self, source: str, cursor: str | None) -> None:
        """Move (or with None remove) a cursor deliberately; the operator's command logs it."""
        with self._session() as session, session.begin():
            session.execute(delete(Checkpoint).where(Checkpoint.source == source))
            if cursor is not None:
                session.add(Checkpoint(source=source, cursor=cursor, updated_at=_now()))

    def checkpoints(self) -> list[Checkpoint]:
        with self._session() as session:
            return list(session.scalars(select(Checkpoint).order_by(Checkpoint.source)))

    # -- failures ------------------------------------------------------------------------------
    def failures(
        self,
        *,
        source: str | None = None,
        failure_class: str | None = None,
        study_uid: str | None = None,
        include_resolved: bool = False,
    ) -> list[Failure]:
        query = select(Failure).order_by(Failure.id)
        if source:
            query = query.where(Failure.source == source)
        if failure_class:
            query = query.where(Failure.failure_class == failure_class)
        if study_uid:
            query = query.where(Failure.study_uid == study_uid)
        if not include_resolved:
            query = query.where(Failure.resolved_at.is_(None))
        with self._session() as session:
            return list(session.scalars(query))

    def failure(self, failure_id: int) -> Failure | None:
        with self._session() as session:
            return session.get(Failure, failure_id)

    def resolve_failure(self, failure_id: int) -> bool:
        with self._session() as session, session.begin():
            result = session.execute(update(Failure).where(Failure.id == failure_id).values(resolved_at=_now()))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # -- leases --------------------------------------------------------------------------------
    def acquire_lease(self, source: str, owner: str, duration: timedelta, *, take_from: str | None = None) -> bool:
        """Take or renew the lease. Succeeds when free, expired, ours, or held by `take_from`
        (our own dead predecessor on this host). Atomic: a conditional UPDATE, or an INSERT that
        loses cleanly on the primary key when two workers race for a new row."""
        now = self._clock()
        expires = now + duration
        holders = [owner] + ([take_from] if take_from else [])
        taking = {"b_source": source, "b_holders": holders, "b_now": now, "b_owner": owner, "b_expires": expires}
        try:
            with self._begin() as connection:
                if connection.execute(sql.take_lease(), taking).rowcount:
                    return True
                if connection.execute(sql.lease_exists(), {"b_source": source}).first() is not None:
                    return False
                connection.execute(sql.add_lease(), {"source": source, "owner": owner, "expires_at": expires})
            return True
        except IntegrityError:
            return False

    def release_lease(self, source: str, owner: str) -> None:
        with self._begin() as connection:
            connection.execute(sql.drop_lease(), {"b_source": source, "b_owner": owner})

    def lease(self, source: str) -> Lease | None:
        with self._connect() as connection:
            row = connection.execute(sql.read_lease(), {"b_source": source}).first()
        return Lease(source=source, owner=row.owner, expires_at=aware(row.expires_at)) if row else None

    # -- reconciliation runs (worker/reconcile.py) ----------------------------------------------
    def last_reconciled(self, source: str) -> datetime | None:
        with self._session() as session:
            row = session.get(Reconciliation, source)
            return aware(row.completed_at) if row and row.completed_at else None

    def reconciliation_baseline(self, source: str) -> int:
        with self._session() as session:
            row = session.get(Reconciliation, source)
            return row.baseline if row else 0

    def record_reconciled(self, source: str, completed_at: datetime | None, baseline: int | None = None) -> None:
        """A full reconciliation completed (None: make the next one due); `baseline` None keeps it."""
        with self._session() as session, session.begin():
            row = session.get(Reconciliation, source)
            if row is None:
                row = Reconciliation(source=source, baseline=0)
                session.add(row)
            row.completed_at = completed_at
            if baseline is not None:
                row.baseline = baseline

    # -- repair runs (reconcile/state.py) ------------------------------------------------------
    def resume_point(self, source: str) -> ResumePoint | None:
        with self._session() as session:
            row = session.get(RepairRun, source)
            return ResumePoint(row.fingerprint, row.partition_key, row.study_uid) if row else None

    def save_resume_point(self, source: str, point: ResumePoint) -> None:
        with self._session() as session, session.begin():
            row = session.get(RepairRun, source) or RepairRun(source=source)
            row.fingerprint, row.partition_key, row.study_uid = point.fingerprint, point.partition_key, point.study_uid
            row.updated_at = self._clock()
            session.add(row)

    def forget_resume_point(self, source: str) -> None:
        with self._session() as session, session.begin():
            session.execute(delete(RepairRun).where(RepairRun.source == source))

    # -- plumbing ------------------------------------------------------------------------------
    def _session(self) -> _GuardedSession:
        return _GuardedSession(self.engine)

    def _begin(self) -> AbstractContextManager[Connection]:
        """A Core transaction, committed at the end of the block; database errors as StoreError."""
        return _guarded(self.engine.begin())

    def _connect(self) -> AbstractContextManager[Connection]:
        return _guarded(self.engine.connect())


def _write_checkpoint(connection: Connection, source: str, cursor: str) -> None:
    now = _now()
    if not connection.execute(sql.move_checkpoint(), {"b_source": source, "b_cursor": cursor, "b_now": now}).rowcount:
        connection.execute(sql.add_checkpoint(), {"source": source, "cursor": cursor, "updated_at": now})


def _record_failure(connection: Connection, source: str, failure: EntryFailure) -> None:
    """One row per (source, sequence, instance, class): a failure seen again counts an attempt
    and reopens the row."""
    entry, now = failure.entry, _now()
    sop_instance_uid = recordable_uid(entry.sop_instance_uid)
    message = failure.reason[:MAX_MESSAGE]
    key = {
        "b_source": source,
        "b_sequence": entry.sequence,
        "b_sop_instance_uid": sop_instance_uid,
        "b_failure_class": failure.failure_class,
    }
    existing = connection.execute(sql.find_failure(), key).first()
    if existing is not None:
        connection.execute(sql.failure_again(), {"b_id": existing.id, "b_now": now, "b_message": message})
        return
    row = {
        "source": source,
        "sequence": entry.sequence,
        "study_uid": recordable_uid(entry.study_uid),
        "series_uid": recordable_uid(entry.series_uid),
        "sop_instance_uid": sop_instance_uid,
        "partition": _fitted(entry.partition, PARTITION_LENGTH),
        "action": _fitted(_action(entry), ACTION_LENGTH) or "",
        "failure_class": failure.failure_class,
        "message": message,
        "attempts": 1,
        "first_seen": now,
        "last_seen": now,
    }
    connection.execute(sql.add_failure(), row)


@contextmanager
def _guarded(opening: AbstractContextManager[Connection]) -> Iterator[Connection]:
    """Database errors surface as StoreError (no SQL, no values); IntegrityError is the caller's."""
    try:
        with opening as connection:
            yield connection
    except IntegrityError:
        raise
    except SQLAlchemyError as exc:
        raise StoreError(f"store error: {type(exc).__name__}") from exc


class _GuardedSession(Session):
    """A Session whose database errors surface as StoreError (no SQL, no values)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, expire_on_commit=False)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        super().__exit__(exc_type, exc, tb)
        if isinstance(exc, SQLAlchemyError) and not isinstance(exc, IntegrityError):
            raise StoreError(f"store error: {type(exc).__name__}") from exc
