"""SQLAlchemy models of the store: checkpoints, permanent failures, leases, reconciliations, repair runs."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


UID_LENGTH = 64  # a DICOM UI value's maximum
PARTITION_LENGTH = 128
ACTION_LENGTH = 16


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Checkpoint(Base):
    """Where a source's feed was last fully handled. The cursor's form is the source's own."""

    __tablename__ = "checkpoints"

    source: Mapped[str] = mapped_column(String(512), primary_key=True)
    cursor: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Failure(Base):
    """An entry that could not be synced for a permanent reason; kept until replayed or resolved."""

    __tablename__ = "failures"
    __table_args__ = (UniqueConstraint("source", "sequence", "sop_instance_uid", "failure_class"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(512), index=True)
    # Feed sequences are 64-bit (the Azure service's bigint); -1 when the entry's own could not be read.
    sequence: Mapped[int] = mapped_column(BigInteger)
    # UIDs and names as far as known and valid ('' otherwise); never longer than these columns.
    study_uid: Mapped[str] = mapped_column(String(UID_LENGTH), index=True)
    series_uid: Mapped[str] = mapped_column(String(UID_LENGTH))
    sop_instance_uid: Mapped[str] = mapped_column(String(UID_LENGTH))
    partition: Mapped[str | None] = mapped_column(String(PARTITION_LENGTH), nullable=True)
    action: Mapped[str] = mapped_column(String(ACTION_LENGTH))  # create | update | delete | unknown
    failure_class: Mapped[str] = mapped_column(String(32))  # feed | dicom | fhir
    message: Mapped[str] = mapped_column(Text)  # never PHI
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Lease(Base):
    """One active writer per source: the holder renews `expires_at` every cycle."""

    __tablename__ = "leases"

    source: Mapped[str] = mapped_column(String(512), primary_key=True)
    owner: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Reconciliation(Base):
    """A source's deletion reconciliation (worker/reconcile.py): when the last full one completed
    (None: one is due) and the instance-count baseline it settled."""

    __tablename__ = "reconciliations"

    source: Mapped[str] = mapped_column(String(512), primary_key=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    baseline: Mapped[int] = mapped_column(BigInteger, default=0)


class RepairRun(Base):
    """Where an interrupted repairing `dicomcast reconcile` of a source resumes: after the study
    (`partition_key`, `study_uid`, in the run's sorted order) whose repair finished last, when run
    again with the same filters (`fingerprint`). A finished run removes its row."""

    __tablename__ = "repair_runs"

    source: Mapped[str] = mapped_column(String(512), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    partition_key: Mapped[str] = mapped_column(String(PARTITION_LENGTH))  # "" without partitions
    study_uid: Mapped[str] = mapped_column(String(UID_LENGTH))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
