"""Both databases run the same Alembic migrations to the same tables."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Engine, inspect, text

from dicomcast.store import Store, is_migrated, make_engine, migrate

TABLES = {"checkpoints", "failures", "leases", "synced_instances", "reconciliations", "repair_runs", "alembic_version"}


def _migrate_to(engine: Engine, revision: str, *, down: bool = False) -> None:
    """Upgrades (or downgrades) the store to one Alembic revision, as an older dicomcast left it."""
    from alembic import command

    from dicomcast.store.db import _alembic_config

    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def _insert_checkpoints(engine: Engine, rows: dict[str, str], when: datetime) -> None:
    insert = text("INSERT INTO checkpoints (source, cursor, updated_at) VALUES (:s, :c, :u)")
    with engine.begin() as connection:
        connection.execute(insert, [{"s": source, "c": cursor, "u": when} for source, cursor in rows.items()])


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
    engine = make_engine(store_url)
    try:
        _migrate_to(engine, "0002")
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


def test_0004_moves_reconcile_rows_out_of_checkpoints_and_back(store_url: str) -> None:
    """`reconcile:<source>` and `reconcile-baseline:<source>` checkpoint rows become reconciliations
    rows (an unparsable time: due); feed checkpoints and `reconcile-run:` resume points stay; the
    downgrade puts them back."""
    engine = make_engine(store_url)
    when = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
    rows = {
        "orthanc:http://h:8042": "7",
        "reconcile:orthanc:http://h:8042": when.isoformat(),
        "reconcile-baseline:orthanc:http://h:8042": "-3",
        "reconcile:orthanc:http://other:8042": "not a time",
        "reconcile-run:azure:http://a/v2": '{"f":"abc"}',
    }
    try:
        _migrate_to(engine, "0003")
        _insert_checkpoints(engine, rows, when)

        _migrate_to(engine, "0004")

        store = Store(engine)
        assert {c.source: c.cursor for c in store.checkpoints()} == {
            "orthanc:http://h:8042": "7",
            "reconcile-run:azure:http://a/v2": '{"f":"abc"}',
        }
        assert store.last_reconciled("orthanc:http://h:8042") == when
        assert store.reconciliation_baseline("orthanc:http://h:8042") == -3
        assert store.last_reconciled("orthanc:http://other:8042") is None
        assert store.reconciliation_baseline("orthanc:http://other:8042") == 0

        _migrate_to(engine, "0003", down=True)
        assert "reconciliations" not in inspect(engine).get_table_names()
        with engine.connect() as connection:
            back = dict(connection.execute(text("SELECT source, cursor FROM checkpoints")).tuples().all())
        assert set(back) == set(rows) - {"reconcile:orthanc:http://other:8042"}
        assert datetime.fromisoformat(back["reconcile:orthanc:http://h:8042"]) == when
        assert back["reconcile-baseline:orthanc:http://h:8042"] == "-3"
    finally:
        engine.dispose()


def test_0005_moves_repair_resume_points_out_of_checkpoints_and_back(store_url: str) -> None:
    """`reconcile-run:<source>` checkpoint rows (JSON) become repair_runs rows; a row that never
    parsed is dropped (its run starts over, as it did); feed checkpoints stay; the downgrade puts
    the resume points back as the JSON reconcile read."""
    from dicomcast.store import ResumePoint

    engine = make_engine(store_url)
    when = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
    rows = {
        "azure:http://a/v2": "7",
        "reconcile-run:azure:http://a/v2": '{"f":"abc123","p":"beta","u":"1.2.3"}',
        "reconcile-run:orthanc:http://h:8042": '{"f":"def456","p":"","u":"1.2.4"}',
        "reconcile-run:orthanc:http://broken:8042": "not json",
    }
    try:
        _migrate_to(engine, "0004")
        _insert_checkpoints(engine, rows, when)

        migrate(engine)

        store = Store(engine)
        assert {c.source: c.cursor for c in store.checkpoints()} == {"azure:http://a/v2": "7"}
        assert store.resume_point("azure:http://a/v2") == ResumePoint("abc123", "beta", "1.2.3")
        assert store.resume_point("orthanc:http://h:8042") == ResumePoint("def456", "", "1.2.4")
        assert store.resume_point("orthanc:http://broken:8042") is None

        _migrate_to(engine, "0004", down=True)
        assert "repair_runs" not in inspect(engine).get_table_names()
        with engine.connect() as connection:
            back = dict(connection.execute(text("SELECT source, cursor FROM checkpoints")).tuples().all())
        assert back == {
            "azure:http://a/v2": "7",
            "reconcile-run:azure:http://a/v2": '{"f":"abc123","p":"beta","u":"1.2.3"}',
            "reconcile-run:orthanc:http://h:8042": '{"f":"def456","p":"","u":"1.2.4"}',
        }
    finally:
        engine.dispose()
