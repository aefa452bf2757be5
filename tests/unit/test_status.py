"""`dicomcast status` reads checkpoints, leases and open failures from the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dicomcast.dicom.models import ChangeAction, ChangeEntry
from dicomcast.errors import StoreError
from dicomcast.failures import EntryFailure, FailureClass
from dicomcast.store import Store, make_engine, migrate

SOURCE = "orthanc:http://127.0.0.1:8042"


def _entry(sequence: int) -> ChangeEntry:
    return ChangeEntry(sequence, ChangeAction.CREATE, "1.2.3", "1.2.3.4", f"1.2.3.4.{sequence}")


def test_status_of_a_store_with_progress(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate(make_engine(url))
    store = Store(make_engine(url))
    failures = [
        EntryFailure(_entry(3), FailureClass.DICOM, "bad date"),
        EntryFailure(_entry(5), FailureClass.DICOM, "bad date"),
    ]
    store.save_page(SOURCE, "7", [*failures, EntryFailure(_entry(6), FailureClass.FHIR, "422")])
    store.acquire_lease(SOURCE, "host:1:abc", timedelta(seconds=60))
    resolved = store.failures(failure_class="fhir")[0].id
    store.resolve_failure(resolved)

    report = Store.open_existing(url).status()

    source = report["sources"][SOURCE]
    assert source["checkpoint"]["cursor"] == "7"
    assert source["lease"]["owner"] == "host:1:abc"
    assert source["lease"]["expired"] is False
    assert source["open_failures"] == {"dicom": 2}
    assert report["open_failures"] == 2


def test_an_expired_lease_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate(make_engine(url))
    Store(make_engine(url)).acquire_lease(SOURCE, "host:1:abc", timedelta(seconds=60))
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert Store.open_existing(url).status(now=later)["sources"][SOURCE]["lease"]["expired"] is True


def test_missing_or_unmigrated_store_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        Store.open_existing(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()
    make_engine(f"sqlite:///{tmp_path / 'empty.db'}").connect().close()
    with pytest.raises(StoreError, match="dicomcast migrate"):
        Store.open_existing(f"sqlite:///{tmp_path / 'empty.db'}")
