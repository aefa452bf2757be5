"""Fixtures shared by the worker-core unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomcast.store import Store, make_engine, migrate


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite store in the test's own directory."""
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    yield Store(engine)
    engine.dispose()
