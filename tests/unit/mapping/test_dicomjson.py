"""The DICOM JSON readers: values out, None for absent, InvalidValueError (tag, no value) otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomcast.dicom import dicomjson as dj
from dicomcast.dicom.dicomjson import InvalidValueError, NameComponents


def ds(vr: str, *values: Any) -> dict[str, Any]:
    return {"00000001": {"vr": vr, "Value": list(values)}}


T = "00000001"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("20240229", "2024-02-29"), ("2024.02.29", "2024-02-29"), (" 19000101 ", "1900-01-01"), ("", None)],
)
def test_date(value: str, expected: str | None) -> None:
    assert dj.date(ds("DA", value), T) == expected


@pytest.mark.parametrize("value", ["20230229", "2024013", "00000101", "20240101-20240102", "abc", 20240101])
def test_bad_date(value: Any) -> None:
    with pytest.raises(InvalidValueError) as caught:
        dj.date(ds("DA", value), T)
    assert caught.value.tag == T and str(value) not in caught.value.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [("07", "07:00:00"), ("0730", "07:30:00"), ("073015.123", "07:30:15.123"), ("07:30:15", "07:30:15")],
)
def test_time(value: str, expected: str) -> None:
    assert dj.time(ds("TM", value), T) == expected


@pytest.mark.parametrize("value", ["2400", "0760", "076161", "7", "07.5"])
def test_bad_time(value: str) -> None:
    with pytest.raises(InvalidValueError):
        dj.time(ds("TM", value), T)


def test_date_time_and_offsets() -> None:
    assert dj.date_time(ds("DT", "20240315101700"), T, "+00:00") == "2024-03-15T10:17:00+00:00"
    assert dj.date_time(ds("DT", "20240315101700.5-0500"), T, "Z") == "2024-03-15T10:17:00.5-05:00"
    assert dj.date_time(ds("DT", "202403"), T, "Z") == "2024-03"
    assert dj.timezone_offset(ds("SH", "+0530"), T) == "+05:30"
    for bad in ["+1500", "0100", "+01:00"]:
        with pytest.raises(InvalidValueError):
            dj.timezone_offset(ds("SH", bad), T)


def test_integer_and_decimal() -> None:
    assert dj.integer(ds("IS", "  42 "), T) == 42
    assert dj.integer(ds("IS", 7), T) == 7
    assert dj.integer(ds("IS", 7.0), T) == 7
    assert dj.decimal(ds("DS", "1.5e-3"), T) == 0.0015
    for bad in [True, 1.5, "4x", 2**40, {"a": 1}]:
        with pytest.raises(InvalidValueError):
            dj.integer(ds("IS", bad), T)
    for bad in ["nan", float("inf"), "1e999"]:
        with pytest.raises(InvalidValueError):
            dj.decimal(ds("DS", bad), T)


def test_person_name_groups() -> None:
    name = dj.person_name(
        ds("PN", {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}), T
    )
    assert name is not None
    assert name.alphabetic == NameComponents("Yamada", "Tarou")
    assert name.ideographic == NameComponents("山田", "太郎")
    assert name.phonetic == NameComponents("やまだ", "たろう")
    assert dj.person_name(ds("PN", "Doe^John==Phon"), T) is not None
    assert dj.person_name(ds("PN", {"Alphabetic": "^^^^"}), T) is None
    with pytest.raises(InvalidValueError):
        dj.person_name(ds("PN", {"Alphabetic": "a^b^c^d^e^f"}), T)
    with pytest.raises(InvalidValueError):
        dj.person_name(ds("PN", ["not", "a", "name"]), T)


def test_text_rejects_what_fhir_or_utf8_cannot_carry() -> None:
    assert dj.text(ds("LO", "  padded \x00"), T) == "padded"
    for bad in ["a\x00b", "\ud800", "x" * 20_000, 5]:
        with pytest.raises(InvalidValueError):
            dj.text(ds("LO", bad), T)


def test_uid_and_structure_errors() -> None:
    assert dj.uid(ds("UI", "1.2.840.10008"), T) == "1.2.840.10008"
    for bad in ["1.2.", "1..2", "a.b", "1." * 40 + "1"]:
        with pytest.raises(InvalidValueError):
            dj.uid(ds("UI", bad), T)
    for element in ["text", {"vr": "LO", "Value": "not a list"}, {"vr": "OB", "InlineBinary": "AA=="}]:
        with pytest.raises(InvalidValueError):
            dj.text({T: element}, T)
    assert dj.text({}, T) is None and dj.text({T: {"vr": "LO"}}, T) is None


def test_code_items() -> None:
    item = {
        "00080100": {"vr": "SH", "Value": ["CT"]},
        "00080102": {"vr": "SH", "Value": ["DCM"]},
        "00080104": {"vr": "LO", "Value": ["Computed Tomography"]},
    }
    assert dj.code_items({T: {"vr": "SQ", "Value": [item]}}, T) == [dj.CodeItem("CT", "DCM", "Computed Tomography")]
    with pytest.raises(InvalidValueError) as caught:
        dj.code_items({T: {"vr": "SQ", "Value": [{"00080104": {"vr": "LO", "Value": ["x"]}}]}}, T)
    assert caught.value.tag == T


def _cleaned_slowly(raw: str) -> str | None:
    """clean_text's rule without its fast path: refuse control characters, other white space to spaces."""
    text = raw.strip(" \x00")
    if dj._FORBIDDEN.search(text):
        raise InvalidValueError(T, "forbidden")
    return dj._OTHER_WHITESPACE.sub(" ", text).strip() or None


@given(
    st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(" \x00\t\r\n\x0b\x0c\xa0\u2003 aZ9^="), max_size=40)
)
def test_clean_text_fast_path_agrees_with_the_rule(raw: str) -> None:
    try:
        expected: str | type[InvalidValueError] | None = _cleaned_slowly(raw)
    except InvalidValueError:
        expected = InvalidValueError
    try:
        got: str | type[InvalidValueError] | None = dj.clean_text(T, raw)
    except InvalidValueError:
        got = InvalidValueError
    assert got == expected


def _text_slowly(dataset: dict[str, Any], tag: str, max_length: int) -> str | None:
    """`text` without its fast path: `values`, then `clean_text` of each value until one is not empty."""
    for raw in dj.values(dataset, tag) or ():
        cleaned = dj.clean_text(tag, raw, max_length)
        if cleaned is not None:
            return cleaned
    return None


_JSON_VALUES = st.one_of(
    st.text(alphabet=st.sampled_from(" \x00\t\xa0\u2003\x7faZ9.^"), max_size=8),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=2), max_size=2),
)


@given(
    element=st.one_of(
        st.fixed_dictionaries({"vr": st.just("LO")}, optional={"Value": st.lists(_JSON_VALUES, max_size=3)}),
        st.fixed_dictionaries({"vr": st.just("LO"), "Value": _JSON_VALUES}),
        st.fixed_dictionaries({"vr": st.just("OB"), "InlineBinary": st.just("AA==")}),
        _JSON_VALUES,
    ),
    max_length=st.sampled_from([4, 64, dj.MAX_TEXT]),
)
def test_text_fast_path_agrees_with_values_and_clean_text(element: Any, max_length: int) -> None:
    outcomes: list[Any] = []
    for read in (dj.text, _text_slowly):
        try:
            outcomes.append(read({T: element}, T, max_length))
        except InvalidValueError as error:
            outcomes.append((InvalidValueError, error.reason))
    assert outcomes[0] == outcomes[1]
