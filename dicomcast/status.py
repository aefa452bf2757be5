"""`dicomcast status`: the sync's state as JSON, read from the store only.

It works while the worker runs elsewhere (another container, another host): checkpoints, who
holds each source's lease and until when, and the open (unresolved) failures per class. It
never creates or migrates the store. No PHI: sources are URLs, failures are counted, not listed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dicomcast.errors import StoreError
from dicomcast.store import is_migrated, make_engine
from dicomcast.store.models import Checkpoint, Failure, Lease


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def open_existing(connection_string: str) -> Engine:
    """An engine on a store that exists and is migrated; StoreError (exit 69) otherwise."""
    url = make_url(connection_string)
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not Path(database).exists():
        raise StoreError(f"no store at {database}: check Store:ConnectionString (`dicomcast run` creates it)")
    engine = make_engine(connection_string)
    if not is_migrated(engine):
        raise StoreError("the store is not migrated to the newest schema: run `dicomcast migrate`")
    return engine


def _source(report: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    return report.setdefault(name, {"checkpoint": None, "lease": None, "open_failures": {}})


def read_status(engine: Engine, now: datetime | None = None) -> dict[str, Any]:
    """{"sources": {name: {checkpoint, lease, open_failures}}, "open_failures": n, "generated_at": ...}."""
    moment = now or datetime.now(UTC)
    sources: dict[str, dict[str, Any]] = {}
    try:
        with Session(engine) as session:
            for checkpoint in session.scalars(select(Checkpoint)):
                _source(sources, checkpoint.source)["checkpoint"] = {
                    "cursor": checkpoint.cursor,
                    "updated_at": _aware(checkpoint.updated_at).isoformat(),
                }
            for lease in session.scalars(select(Lease)):
                expires = _aware(lease.expires_at)
                _source(sources, lease.source)["lease"] = {
                    "owner": lease.owner,
                    "expires_at": expires.isoformat(),
                    "expired": expires <= moment,
                }
            counts = select(Failure.source, Failure.failure_class, func.count()).where(Failure.resolved_at.is_(None))
            for source, failure_class, count in session.execute(counts.group_by(Failure.source, Failure.failure_class)):
                _source(sources, source)["open_failures"][failure_class] = int(count)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the store: {type(exc).__name__}") from None
    total = sum(n for s in sources.values() for n in s["open_failures"].values())
    return {
        "generated_at": moment.isoformat(),
        "sources": dict(sorted(sources.items())),
        "open_failures": total,
    }
