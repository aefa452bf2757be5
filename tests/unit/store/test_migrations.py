"""Both databases run the same Alembic migrations to the same tables."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, inspect, text

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


def test_0003_keeps_the_failures_of_0002_and_takes_64_bit_sequences(store_url: str) -> None:
    """A store made by 0002 (32-bit failure sequences) upgraded in place: rows kept, 2^40 fits."""
    from alembic import command

    from dicomcast.store.db import _alembic_config

    engine = make_engine(store_url)
    try:
        config = _alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0002")
        row = {
            "source": "s",
            "study_uid": "1.2",
            "series_uid": "1.2.3",
            "sop_instance_uid": "1.2.3.4",
            "action": "create",
            "failure_class": "dicom",
            "message": "m",
            "attempts": 1,
            "first_seen": datetime(2026, 1, 1, tzinfo=UTC),
            "last_seen": datetime(2026, 1, 1, tzinfo=UTC),
        }
        insert = text(
            "INSERT INTO failures (source, sequence, study_uid, series_uid, sop_instance_uid, action, "
            "failure_class, message, attempts, first_seen, last_seen) VALUES (:source, :sequence, :study_uid, "
            ":series_uid, :sop_instance_uid, :action, :failure_class, :message, :attempts, :first_seen, :last_seen)"
        )
        with engine.begin() as connection:
            connection.execute(insert, {**row, "sequence": 7})

        migrate(engine)

        with engine.begin() as connection:
            connection.execute(insert, {**row, "sequence": 2**40, "sop_instance_uid": "1.2.3.5"})
            stored = connection.execute(text("SELECT sequence FROM failures ORDER BY sequence")).scalars().all()
        assert stored == [7, 2**40]
        sequence = next(c for c in inspect(engine).get_columns("failures") if c["name"] == "sequence")
        assert isinstance(sequence["type"], BigInteger) or engine.dialect.name == "sqlite"
        assert {u["name"] for u in inspect(engine).get_unique_constraints("failures")} == {"uq_failures_source"}
    finally:
        engine.dispose()
