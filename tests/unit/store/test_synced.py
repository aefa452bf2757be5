"""The index of synced instances that Orthanc reconciliation reads."""

from __future__ import annotations

from dicomcast.store import Store
from dicomcast.store.synced import SyncedIndex, SyncedKey

SOURCE = "orthanc:http://127.0.0.1:1"


def test_remember_is_idempotent_and_forget_removes_only_what_is_named(store: Store) -> None:
    index = SyncedIndex(store.engine)
    keys = [SyncedKey("1.1", "1.1.1", f"1.1.1.{n}") for n in range(3)] + [SyncedKey("2.2", "2.2.1", "2.2.1.1", "p1")]
    index.remember(SOURCE, keys)
    index.remember(SOURCE, keys[:2])  # again: no error, no second row
    index.remember("other", keys[:1])

    assert index.count(SOURCE) == 4
    assert index.studies(SOURCE) == [(None, "1.1"), ("p1", "2.2")]
    index.forget(SOURCE, "1.1", ["1.1.1.0", "1.1.1.2"])
    assert [k.sop_instance_uid for k in index.instances(SOURCE, "1.1")] == ["1.1.1.1"]
    assert index.count("other") == 1


def test_entries_without_uids_are_not_remembered(store: Store) -> None:
    index = SyncedIndex(store.engine)
    assert index.remember(SOURCE, [SyncedKey("", "", "")]) == 0
    assert index.count(SOURCE) == 0
