"""The store: checkpoints, failures, leases, synced instances, reconciliations and repair runs in
SQLite (default) or PostgreSQL. Code outside this package reads and writes them through `Store` only."""

from dicomcast.store.db import is_migrated, make_engine, migrate
from dicomcast.store.repository import ResumePoint, Store

__all__ = ["ResumePoint", "Store", "is_migrated", "make_engine", "migrate"]
