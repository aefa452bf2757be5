"""Both databases run the same Alembic migrations to the same tables."""

from __future__ import annotations

from sqlalchemy import inspect

from dicomcast.store import is_migrated, make_engine, migrate

TABLES = {"checkpoints", "failures", "leases", "synced_instances", "alembic_version"}


def test_migrations_create_every_table_and_are_idempotent(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        assert not is_migrated(engine)
        migrate(engine)
        migrate(engine)  # a second run changes nothing and does not fail
        assert is_migrated(engine)
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) >= TABLES
        columns = {c["name"] for c in inspector.get_columns("synced_instances")}
        assert columns == {"source", "study_uid", "sop_instance_uid", "series_uid", "partition", "synced_at"}
        failure_columns = {c["name"] for c in inspector.get_columns("failures")}
        assert {"attempts", "first_seen", "last_seen", "resolved_at", "failure_class"} <= failure_columns
    finally:
        engine.dispose()
