"""A migrated store on SQLite (always) and PostgreSQL (where 127.0.0.1:5432 answers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomcast.store import Store, make_engine, migrate
from tests.integration.pg import fresh_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with fresh_schema() as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    engine = make_engine(store_url)
    migrate(engine)
    yield Store(engine)
    engine.dispose()
