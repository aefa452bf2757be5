"""PostgreSQL at 127.0.0.1:5432 (db `test`, user postgres, trust auth) for store tests: one fresh
schema per test, dropped afterwards. Tests skip with the reason when the server is unreachable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def unreachable() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e .[dev])"
    try:
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at 127.0.0.1:5432 db test is unreachable: {str(exc).splitlines()[0]}"


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A connection URL whose search_path is a new, empty schema (dropped on exit)."""
    import psycopg

    reason = unreachable()
    if reason:
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{BASE}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
