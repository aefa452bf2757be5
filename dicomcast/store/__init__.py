"""The store: checkpoints, failures and leases in SQLite (default) or PostgreSQL."""

from dicomcast.store.db import is_migrated, make_engine, migrate
from dicomcast.store.repository import Store

__all__ = ["Store", "is_migrated", "make_engine", "migrate"]
