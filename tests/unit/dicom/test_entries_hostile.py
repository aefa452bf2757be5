"""Property tests: whatever a change-feed entry holds, reading it raises nothing but EntryFormatError,
what is recorded of an unreadable one never fails, and no reason repeats the entry's values."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dicomcast.dicom.azure_entries import EntryFormatError, parse_entry, unreadable_entry
from dicomcast.dicom.models import MAX_UID_LENGTH, UNKNOWN_SEQUENCE

MARK = "Doe^Jane"  # stands for PHI: it may be in any value, never in a reason
KEYS = [
    "sequence", "Sequence", "studyInstanceUid", "seriesInstanceUid", "sopInstanceUid", "action", "Action",
    "timestamp", "state", "partitionName", "metadata",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            MARK, "", "Create", "delete", "2", "1.2.3", "1." + "9" * 80, "2024-02-30T00:00:00Z",
            "9999-12-31T23:59:59-14:00", "0000-01-01T00:00:00Z", "2024-01-01T24:00:00Z", "../" + MARK,
        ]
    ),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from([*KEYS, "00100010"]), inner, max_size=3)
    ),
    max_leaves=10,
)
GOOD = {
    "sequence": 7,
    "studyInstanceUid": "1.2",
    "seriesInstanceUid": "1.2.3",
    "sopInstanceUid": "1.2.3.4",
    "action": "Create",
    "timestamp": "2026-01-01T00:00:00.1234567+00:00",
    "state": "Current",
}


@settings(max_examples=400, deadline=None)
@given(st.one_of(values, st.dictionaries(st.sampled_from(KEYS), values, max_size=6).map(lambda d: {**GOOD, **d})))
def test_reading_any_entry_raises_only_entry_format_errors_without_values(raw: Any) -> None:
    try:
        parse_entry(raw)
    except EntryFormatError as error:
        recorded = unreadable_entry(raw, str(error))
        assert MARK not in recorded.reason and "Doe" not in repr(recorded)
        assert recorded.sequence == UNKNOWN_SEQUENCE or 0 < recorded.sequence < 2**63
        assert all(len(uid) <= MAX_UID_LENGTH for uid in (recorded.study_uid, recorded.sop_instance_uid))
        assert recorded.action in ("create", "update", "delete", "unknown")
