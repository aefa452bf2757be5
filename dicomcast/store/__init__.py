"""The store: checkpoints, failures, leases, synced instances and reconciliations in SQLite (default)
or PostgreSQL. Code outside this package reads and writes them through `Store` only."""

from dicomcast.store.db import is_migrated, make_engine, migrate
from dicomcast.store.repository import Store

__all__ = ["Store", "is_migrated", "make_engine", "migrate"]
