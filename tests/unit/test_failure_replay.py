"""Which failure rows `dicomcast failures retry` can replay: only those whose entry is known."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dicomcast.dicom.models import ChangeAction
from dicomcast.store.models import Failure
from dicomcast.worker.replay import entry_of


def _row(**changes: object) -> Failure:
    fields: dict[str, object] = {
        "id": 1,
        "source": "azure:https://dicom.test/v2",
        "sequence": 9,
        "study_uid": "1.2",
        "series_uid": "1.2.3",
        "sop_instance_uid": "1.2.3.4",
        "partition": None,
        "action": "create",
        "failure_class": "feed",
        "message": "timestamp is not a calendar date and time",
        "attempts": 1,
        "first_seen": datetime(2026, 1, 1, tzinfo=UTC),
        "last_seen": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return Failure(**{**fields, **changes})


def test_a_feed_entry_with_known_action_and_uids_is_replayed_as_an_entry() -> None:
    entry = entry_of(_row())
    assert entry is not None and (entry.sequence, entry.action) == (9, ChangeAction.CREATE)


@pytest.mark.parametrize(
    "changes", [{"action": "unknown"}, {"sop_instance_uid": ""}, {"study_uid": "1." + "2" * 59 + "..."}]
)
def test_a_feed_entry_read_too_little_to_be_replayed(changes: dict[str, object]) -> None:
    assert entry_of(_row(**changes)) is None
