"""Checkpoints, failures and leases on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dicomcast.dicom.models import UNKNOWN_SEQUENCE, ChangeAction, ChangeEntry, UnreadableEntry
from dicomcast.failures import EntryFailure, FailureClass
from dicomcast.store import Store
from dicomcast.store.repository import LeaseTerm

SOURCE = "orthanc:http://127.0.0.1:1"


def _entry(sequence: int, sop: str = "1.2.3.1") -> ChangeEntry:
    return ChangeEntry(sequence, ChangeAction.CREATE, "1.2.3", "1.2.3.0", sop)


def test_checkpoint_moves_with_the_page_and_can_be_reset(store: Store) -> None:
    assert store.read_checkpoint(SOURCE) is None
    store.save_page(SOURCE, "10")
    store.save_page(SOURCE, "20")
    assert store.read_checkpoint(SOURCE) == "20"
    store.set_checkpoint(SOURCE, None)
    assert store.read_checkpoint(SOURCE) is None


def test_the_same_failure_twice_is_one_row_with_two_attempts(store: Store) -> None:
    failure = EntryFailure(_entry(7), FailureClass.FHIR, "HTTP 422: ImagingStudy.series invalid")
    store.save_page(SOURCE, "7", [failure])
    store.save_page(SOURCE, "7", [failure])
    store.save_page(SOURCE, "8", [EntryFailure(_entry(8, "1.2.3.2"), FailureClass.DICOM, "invalid Modality")])

    rows = store.failures(source=SOURCE)
    assert [(r.sequence, r.attempts, r.failure_class) for r in rows] == [(7, 2, "fhir"), (8, 1, "dicom")]
    assert store.read_checkpoint(SOURCE) == "8"
    assert [r.sequence for r in store.failures(failure_class="dicom")] == [8]
    assert store.failures(study_uid="9.9") == []


def test_every_value_a_feed_can_send_fits_the_failure_row(store: Store) -> None:
    """64-bit sequences, over-long UIDs and names: recorded (cut where needed), never a store error."""
    long_uid = "1." + "2" * 100
    huge = ChangeEntry(2**63 - 1, ChangeAction.CREATE, long_uid, "1.2", "1.2.3", partition="p" * 300)
    unreadable = UnreadableEntry(UNKNOWN_SEQUENCE, "entry is not a JSON object", action="x" * 40)
    store.save_page(
        SOURCE,
        "9",
        [EntryFailure(huge, FailureClass.DICOM, "m" * 5000), EntryFailure(unreadable, FailureClass.FEED, "why")],
    )
    store.save_page(SOURCE, "9", [EntryFailure(unreadable, FailureClass.FEED, "why")])  # seen again: the same row

    rows = store.failures(source=SOURCE)
    assert [(r.sequence, r.attempts) for r in rows] == [(2**63 - 1, 1), (UNKNOWN_SEQUENCE, 2)]
    assert rows[0].study_uid == long_uid[:61] + "..." and len(rows[0].partition or "") == 128
    assert len(rows[0].message) == 2000 and len(rows[1].action) == 16
    assert (rows[1].study_uid, rows[1].sop_instance_uid) == ("", "")
    assert store.read_checkpoint(SOURCE) == "9"


def test_text_that_is_no_uid_is_not_stored_as_one(store: Store) -> None:
    entry = ChangeEntry(3, ChangeAction.CREATE, "Doe^John", "1.2", "1.2.3")
    store.save_page(SOURCE, "3", [EntryFailure(entry, FailureClass.FEED, "studyInstanceUid is not a valid UID")])
    assert store.failures()[0].study_uid == ""


def test_a_resolved_failure_leaves_the_open_list(store: Store) -> None:
    store.save_page(SOURCE, "7", [EntryFailure(_entry(7), FailureClass.DICOM, "invalid Modality")])
    row = store.failures()[0]

    assert store.resolve_failure(row.id)
    assert store.failures() == []
    assert store.failures(include_resolved=True)[0].resolved_at is not None
    assert not store.resolve_failure(row.id + 1000)


def test_a_resolved_failure_seen_again_is_reopened_with_one_more_attempt(store: Store) -> None:
    store.save_page(SOURCE, "7", [EntryFailure(_entry(7), FailureClass.DICOM, "invalid Modality")])
    first = store.failures()[0]
    assert store.resolve_failure(first.id)

    store.record_failures(SOURCE, [EntryFailure(_entry(7), FailureClass.DICOM, "invalid Modality again")])

    (row,) = store.failures()
    assert (row.id, row.attempts, row.message, row.resolved_at) == (first.id, 2, "invalid Modality again", None)
    assert row.last_seen >= first.last_seen and row.first_seen == first.first_seen


def test_a_refused_fenced_checkpoint_writes_no_failure_and_no_checkpoint(store: Store) -> None:
    assert store.acquire_lease(SOURCE, "b", timedelta(seconds=30))
    failure = EntryFailure(_entry(7), FailureClass.DICOM, "invalid Modality")

    assert not store.save_page(SOURCE, "7", [failure], lease=LeaseTerm("a", timedelta(seconds=30)))

    assert store.read_checkpoint(SOURCE) is None and store.failures(include_resolved=True) == []
    lease = store.lease(SOURCE)
    assert lease is not None and lease.owner == "b"  # the holder's lease untouched


def test_one_lease_holder_at_a_time(store: Store) -> None:
    assert store.acquire_lease(SOURCE, "a", timedelta(seconds=30))
    assert not store.acquire_lease(SOURCE, "b", timedelta(seconds=30))
    assert store.acquire_lease(SOURCE, "a", timedelta(seconds=30))  # renewal
    lease = store.lease(SOURCE)
    assert lease is not None and lease.owner == "a"
    store.release_lease(SOURCE, "b")  # not b's to release
    assert store.lease(SOURCE) is not None
    store.release_lease(SOURCE, "a")
    assert store.acquire_lease(SOURCE, "b", timedelta(seconds=30))


def test_an_expired_lease_or_a_dead_predecessors_is_taken(store: Store) -> None:
    now = [datetime.now(UTC)]
    store = Store(store.engine, clock=lambda: now[0])
    assert store.acquire_lease(SOURCE, "a", timedelta(milliseconds=50))
    assert not store.acquire_lease(SOURCE, "b", timedelta(seconds=30))
    now[0] += timedelta(milliseconds=100)
    assert store.acquire_lease(SOURCE, "b", timedelta(seconds=30))
    assert store.acquire_lease(SOURCE, "c", timedelta(seconds=30), take_from="b")
    lease = store.lease(SOURCE)
    assert lease is not None and lease.owner == "c"


def test_a_fenced_checkpoint_moves_only_while_its_owner_holds_the_lease(store: Store) -> None:
    now = [datetime.now(UTC)]
    store = Store(store.engine, clock=lambda: now[0])
    assert store.acquire_lease(SOURCE, "a", timedelta(seconds=30))
    failure = EntryFailure(_entry(7), FailureClass.DICOM, "invalid Modality")
    now[0] += timedelta(seconds=20)
    assert store.save_page(SOURCE, "7", [failure], lease=LeaseTerm("a", timedelta(seconds=30)))
    lease = store.lease(SOURCE)
    assert lease is not None and lease.expires_at == now[0] + timedelta(seconds=30)  # renewed with it
    assert store.acquire_lease(SOURCE, "b", timedelta(seconds=30), take_from="a")  # taken

    assert not store.save_page(
        SOURCE, "9", [EntryFailure(_entry(9), FailureClass.DICOM, "x")], lease=LeaseTerm("a", timedelta(seconds=30))
    )

    assert store.read_checkpoint(SOURCE) == "7"  # nothing of the refused page written
    assert [r.sequence for r in store.failures(source=SOURCE)] == [7]
    lease = store.lease(SOURCE)
    assert lease is not None and lease.owner == "b"
    store.release_lease(SOURCE, "b")
    assert not store.save_page(SOURCE, "9", lease=LeaseTerm("a", timedelta(seconds=30)))  # no lease at all
    assert store.read_checkpoint(SOURCE) == "7"


def test_a_repair_runs_resume_point_is_saved_replaced_and_forgotten_per_source(store: Store) -> None:
    from dicomcast.store import ResumePoint

    assert store.resume_point("s") is None
    store.save_resume_point("s", ResumePoint("f1", "", "1.2.3"))
    store.save_resume_point("s", ResumePoint("f1", "beta", "1.2.9"))
    store.save_resume_point("other", ResumePoint("f2", "", "1.2.4"))
    assert store.resume_point("s") == ResumePoint("f1", "beta", "1.2.9")
    assert store.checkpoints() == []  # never a checkpoint row standing in for a source
    store.forget_resume_point("s")
    assert store.resume_point("s") is None and store.resume_point("other") == ResumePoint("f2", "", "1.2.4")
