"""Engine creation and migrations (Alembic) for the store."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from dicomcast.errors import StoreError

MIGRATION_LOCK = 0x64636D63  # 'dcmc': the advisory lock key of dicomcast's migrations


def migrations_dir() -> Path:
    """The top-level migrations/ of a checkout, else the copy shipped in the wheel."""
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if (checkout / "env.py").exists():
        return checkout
    return Path(str(resources.files("dicomcast._migrations")))


def make_engine(url: str) -> Engine:
    """An engine for the store; SQLite gets WAL and a busy timeout so threads and processes share it."""
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise StoreError(f"Store:ConnectionString is not usable: {type(exc).__name__}") from None


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def migrate(engine: Engine) -> None:
    """Bring the store to the newest schema (idempotent)."""
    config = _alembic_config()
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Replicas starting together: one migrates, the others wait, then find nothing to do.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate the store: {type(exc).__name__}: {_short(exc)}") from None


def is_migrated(engine: Engine) -> bool:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision() == head
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the store: {type(exc).__name__}: {_short(exc)}") from None


def _short(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0][:200]


def sqlite_file_missing(url: URL) -> bool:
    """A SQLite store whose file does not exist (opening it would create an empty one)."""
    database = url.database or ""
    return url.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not Path(database).exists()


def store_label(connection_string: str) -> str:
    """The connection string without its password, for output."""
    return make_url(connection_string).render_as_string(hide_password=True)


def open_existing(connection_string: str) -> Engine:
    """An engine on a store that exists and is migrated; StoreError (exit 69) otherwise."""
    url = make_url(connection_string)
    if sqlite_file_missing(url):
        raise StoreError(f"no store at {url.database}: check Store:ConnectionString (`dicomcast run` creates it)")
    engine = make_engine(connection_string)
    if not is_migrated(engine):
        raise StoreError("the store is not migrated to the newest schema: run `dicomcast migrate`")
    return engine
