"""Which instances a source has synced, for sources whose feed never reports deletions (Orthanc).

Orthanc erases the change rows of deleted resources, so a deletion can only be found by asking the
server whether what was synced is still there (worker/reconcile.py). A row is written when an entry
is read from the feed, before its FHIR write: a crash then leaves at most a row too many (its
deletion is a no-op), never one too few (an instance in FHIR that reconciliation would not see).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, String, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from dicomcast.errors import StoreError
from dicomcast.store.models import Base


class SyncedInstance(Base):
    """One instance a source's feed delivered and the worker synced (or tried to)."""

    __tablename__ = "synced_instances"

    source: Mapped[str] = mapped_column(String(512), primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64))
    partition: Mapped[str | None] = mapped_column(String(128), nullable=True)
    synced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class SyncedKey:
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    partition: str | None = None


class SyncedIndex:
    """Reads and writes of `synced_instances`, each in a short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def remember(self, source: str, keys: Iterable[SyncedKey]) -> int:
        """Insert the keys not yet known (idempotent; safe under concurrent writers)."""
        now = datetime.now(UTC)
        rows = [
            {
                "source": source,
                "study_uid": k.study_uid,
                "sop_instance_uid": k.sop_instance_uid,
                "series_uid": k.series_uid,
                "partition": k.partition,
                "synced_at": now,
            }
            for k in {(k.study_uid, k.sop_instance_uid): k for k in keys if k.study_uid and k.sop_instance_uid}.values()
        ]
        if not rows:
            return 0
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(SyncedInstance).values(rows).on_conflict_do_nothing()
        with self._guard(), Session(self.engine) as session, session.begin():
            session.execute(statement)
        return len(rows)

    def studies(self, source: str) -> list[tuple[str | None, str]]:
        """(partition, study uid) of every study with a remembered instance."""
        query = (
            select(SyncedInstance.partition, SyncedInstance.study_uid)
            .where(SyncedInstance.source == source)
            .distinct()
            .order_by(SyncedInstance.study_uid)
        )
        with self._guard(), Session(self.engine) as session:
            return [(row[0], row[1]) for row in session.execute(query)]

    def instances(self, source: str, study_uid: str) -> list[SyncedKey]:
        query = select(SyncedInstance).where(SyncedInstance.source == source, SyncedInstance.study_uid == study_uid)
        with self._guard(), Session(self.engine) as session:
            return [
                SyncedKey(r.study_uid, r.series_uid, r.sop_instance_uid, r.partition) for r in session.scalars(query)
            ]

    def forget(self, source: str, study_uid: str, sop_instance_uids: Iterable[str]) -> None:
        uids = list(sop_instance_uids)
        with self._guard(), Session(self.engine) as session, session.begin():
            for start in range(0, len(uids), 500):
                session.execute(
                    delete(SyncedInstance).where(
                        SyncedInstance.source == source,
                        SyncedInstance.study_uid == study_uid,
                        SyncedInstance.sop_instance_uid.in_(uids[start : start + 500]),
                    )
                )

    def count(self, source: str) -> int:
        """How many instances of `source` are remembered (a COUNT in the database: no rows read)."""
        query = select(func.count()).select_from(SyncedInstance).where(SyncedInstance.source == source)
        with self._guard(), Session(self.engine) as session:
            return int(session.execute(query).scalar_one())

    def _guard(self) -> _StoreErrors:
        return _StoreErrors()


class _StoreErrors:
    """Database errors surface as StoreError (no SQL, no values)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if isinstance(exc, SQLAlchemyError):
            raise StoreError(f"store error: {type(exc).__name__}") from exc
