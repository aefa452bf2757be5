"""`dicomcast run` says in one line when its checkpoint store would not survive the container."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dicomcast.store.durability import EPHEMERAL_STORE_WARNING, ephemeral_sqlite
from tests.integration.sync_helpers import dicomcast

pytestmark = pytest.mark.integration


def test_run_warns_once_for_sqlite_on_the_container_filesystem(tmp_path: Path) -> None:
    """The real command on this machine: it warns exactly when the store is a SQLite file on a
    container's own filesystem (a container here: /tmp is its own layer; elsewhere: no line)."""
    store = f"sqlite:///{tmp_path / 'dicomcast.db'}"
    env = {k: v for k, v in os.environ.items() if "__" not in k and not k.startswith("APPLICATIONINSIGHTS")}
    env |= {"Store__ConnectionString": store, "DicomWeb__Endpoint": "http://127.0.0.1:9/v2", "Logging__Format": "json"}
    result = dicomcast(["run", "--once"], env, timeout=120)  # no Fhir:Endpoint: exits 78 after the check
    assert result.returncode == 78, result.stderr[-2000:]
    output = result.stdout + result.stderr
    expected = 1 if ephemeral_sqlite(store) is not None else 0
    assert output.count(EPHEMERAL_STORE_WARNING) == expected
