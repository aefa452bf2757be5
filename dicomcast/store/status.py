"""The sync's state for `dicomcast status`, read from the store only: checkpoints, who holds each
source's lease and until when, and the open (unresolved) failures per class. No PHI: sources are
URLs, failures are counted, not listed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dicomcast.errors import StoreError
from dicomcast.store.models import Checkpoint, Failure, Lease, aware


def _source(report: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    return report.setdefault(name, {"checkpoint": None, "lease": None, "open_failures": {}})


def read_status(engine: Engine, moment: datetime) -> dict[str, Any]:
    """{"sources": {name: {checkpoint, lease, open_failures}}, "open_failures": n, "generated_at": ...}."""
    sources: dict[str, dict[str, Any]] = {}
    try:
        with Session(engine) as session:
            for checkpoint in session.scalars(select(Checkpoint)):
                _source(sources, checkpoint.source)["checkpoint"] = {
                    "cursor": checkpoint.cursor,
                    "updated_at": aware(checkpoint.updated_at).isoformat(),
                }
            for lease in session.scalars(select(Lease)):
                expires = aware(lease.expires_at)
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
