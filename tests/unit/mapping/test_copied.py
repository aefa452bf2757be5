"""`copied`, the mapping's deep copy of FHIR JSON (in place of `copy.deepcopy`): equal, of the same
types (1, 1.0 and True stay apart), and sharing nothing a later change could reach."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dicomcast.fhir.mapping.types import copied

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=30,
)


def _shape(value: Any) -> Any:
    """The value with each scalar's type beside it, so that 1 == 1.0 == True cannot hide a change."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return (type(value).__name__, value)


def _containers(value: Any) -> list[int]:
    if isinstance(value, dict):
        return [id(value), *(i for v in value.values() for i in _containers(v))]
    if isinstance(value, list):
        return [id(value), *(i for v in value for i in _containers(v))]
    return []


@given(JSON)
def test_a_copy_equals_the_original_with_the_same_types_and_shares_no_container(value: Any) -> None:
    copy_ = copied(value)
    assert _shape(copy_) == _shape(value) == _shape(copy.deepcopy(value))
    assert set(_containers(copy_)).isdisjoint(_containers(value))


def test_changing_the_copy_leaves_the_original_as_it_was() -> None:
    study = {"resourceType": "ImagingStudy", "series": [{"uid": "1", "instance": [{"uid": "1.1", "number": 1}]}]}
    before = copy.deepcopy(study)
    copy_ = copied(study)
    copy_["series"][0]["instance"].append({"uid": "1.2"})
    copy_["series"][0]["uid"] = "2"
    assert study == before
