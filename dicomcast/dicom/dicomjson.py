"""Typed, total readers of DICOM JSON (PS3.18 F.2).

Every reader takes a dataset (`{"0020000D": {"vr": "UI", "Value": [...]}, ...}`) and a tag, and
returns the value in a plain Python or FHIR-ready form, or None when the element is absent or
empty. A present value that cannot be read raises `InvalidValueError`, which names the tag and the
problem, never the value (values may be PHI). No other exception escapes, whatever the JSON holds:
wrong VRs, wrong JSON types, control characters, lone surrogates, huge strings.

The parsers are small regular expressions rather than pydicom's `valuerep` classes: they run for
every instance of a busy change feed, and must be total (pydicom raises many exception types and
accepts some values FHIR refuses).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date as _date
from typing import Any

from dicomcast.dicom import tags
from dicomcast.dicom.timezones import default_offset
from dicomcast.errors import MappingError

DicomJson = dict[str, Any]

MAX_TEXT = 10_000  # longer than any DICOM string VR but UT/UR; keeps FHIR resources sane
MAX_ITEMS = 10_000  # values or sequence items read from one element

_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_INTEGER = re.compile(r"^[+-]?[0-9]{1,12}$")
_DECIMAL = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$")
_DA = re.compile(r"^([0-9]{4})\.?([0-9]{2})\.?([0-9]{2})$")
_TM = re.compile(r"^([0-9]{2})(?::?([0-9]{2})(?::?([0-9]{2})(?:\.([0-9]{1,6}))?)?)?$")
_DT = re.compile(r"^([0-9]{4})([0-9]{2})?([0-9]{2})?([0-9]{2})?([0-9]{2})?([0-9]{2})?(\.[0-9]{1,6})?([+-][0-9]{4})?$")
_OFFSET = re.compile(r"^([+-])([0-9]{2})([0-9]{2})$")


class InvalidValueError(MappingError):
    """A present DICOM value that cannot be read. Names the tag and the problem, never the value."""

    def __init__(self, tag: str, problem: str) -> None:
        super().__init__(problem, tag=tag)


@dataclass(frozen=True)
class NameComponents:
    """One component group of a PN value (family^given^middle^prefix^suffix); '' where empty."""

    family: str = ""
    given: str = ""
    middle: str = ""
    prefix: str = ""
    suffix: str = ""


@dataclass(frozen=True)
class PersonName:
    """A PN value: its alphabetic, ideographic and phonetic component groups (None where empty)."""

    alphabetic: NameComponents | None = None
    ideographic: NameComponents | None = None
    phonetic: NameComponents | None = None


@dataclass(frozen=True)
class CodeItem:
    """A Code Sequence item (PS3.3 Table 8.8-1): value, scheme designator, meaning, version."""

    value: str
    scheme: str | None
    meaning: str | None = None
    version: str | None = None


# -- elements and raw values ------------------------------------------------------------------


def values(dataset: DicomJson, tag: str) -> list[Any] | None:
    """The element's `Value` array, or None when the element is absent or has no value."""
    element = dataset.get(tag)
    if element is None:
        return None
    if not isinstance(element, dict):
        raise InvalidValueError(tag, "element is not a JSON object")
    value = element.get("Value")
    if value is None:
        if "InlineBinary" in element or "BulkDataURI" in element:
            raise InvalidValueError(tag, "binary data where a value was expected")
        return None
    if not isinstance(value, list):
        raise InvalidValueError(tag, "Value is not a JSON array")
    if len(value) > MAX_ITEMS:
        raise InvalidValueError(tag, "too many values")
    return value if value else None


_OTHER_WHITESPACE = re.compile(r"[^\S \r\n\t]")


def clean_text(tag: str, raw: Any, max_length: int = MAX_TEXT) -> str | None:
    """A string value without DICOM padding; None when empty."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidValueError(tag, "value is not a string")
    if len(raw) > max_length:
        raise InvalidValueError(tag, f"value longer than {max_length} characters")
    text = raw.strip(" \x00")
    if text.isascii() and text.isprintable():  # most values: nothing below can match or change them
        return text or None
    if _FORBIDDEN.search(text):
        raise InvalidValueError(tag, "value contains control characters or invalid Unicode")
    # FHIR strings allow no whitespace but space, CR, LF and tab: other kinds (NBSP, ...) become spaces.
    text = _OTHER_WHITESPACE.sub(" ", text).strip()
    return text or None


def text(dataset: DicomJson, tag: str, max_length: int = MAX_TEXT) -> str | None:
    """The first non-empty string value (LO, SH, CS, LT, ST, UT, ...)."""
    element = dataset.get(tag)
    if element is None:
        return None
    plain = _plain_first(element, max_length)
    if plain is not None:
        return plain
    for raw in values(dataset, tag) or ():
        cleaned = clean_text(tag, raw, max_length)
        if cleaned is not None:
            return cleaned
    return None


def _plain_first(element: Any, max_length: int) -> str | None:
    """The element's first value when it is printable ASCII (most values), else None: what `values`
    and `clean_text` make of it, in one go (`text` runs about 8 times an instance)."""
    if type(element) is not dict:
        return None
    value = element.get("Value")
    if type(value) is not list or not 0 < len(value) <= MAX_ITEMS:
        return None
    first = value[0]
    if type(first) is not str or len(first) > max_length:
        return None
    stripped = first.strip(" \x00")
    return stripped if stripped and stripped.isascii() and stripped.isprintable() else None


def texts(dataset: DicomJson, tag: str, max_length: int = MAX_TEXT) -> list[str]:
    """Every non-empty string value of a multi-valued element, in order."""
    out: list[str] = []
    for raw in values(dataset, tag) or ():
        cleaned = clean_text(tag, raw, max_length)
        if cleaned is not None:
            out.append(cleaned)
    return out


def uid(dataset: DicomJson, tag: str) -> str | None:
    """A UI value: digits and dots, at most 64 characters (so it is also a FHIR `id`)."""
    value = text(dataset, tag, max_length=128)
    if value is None:
        return None
    if len(value) > 64 or not _UID.match(value):
        raise InvalidValueError(tag, "not a valid UID")
    return value


def integer(dataset: DicomJson, tag: str) -> int | None:
    """The first value of an IS (or US/SS/UL/SL) element as an int."""
    raw_values = values(dataset, tag)
    if not raw_values:
        return None
    raw = raw_values[0]
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise InvalidValueError(tag, "value is not an integer")
    if isinstance(raw, int):
        number = raw
    elif isinstance(raw, float):
        if not math.isfinite(raw) or not raw.is_integer():
            raise InvalidValueError(tag, "value is not an integer")
        number = int(raw)
    elif isinstance(raw, str):
        stripped = raw.strip(" \x00")
        if not stripped:
            return None
        if not _INTEGER.match(stripped):
            raise InvalidValueError(tag, "value is not an integer")
        number = int(stripped)
    else:
        raise InvalidValueError(tag, "value is not an integer")
    if not -(2**31) <= number < 2**31:
        raise InvalidValueError(tag, "integer out of range")
    return number


def decimal(dataset: DicomJson, tag: str) -> float | int | None:
    """The first value of a DS (or FD/FL) element; ints stay ints so JSON keeps their form."""
    raw_values = values(dataset, tag)
    if not raw_values:
        return None
    raw = raw_values[0]
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise InvalidValueError(tag, "value is not a number")
    if isinstance(raw, str):
        stripped = raw.strip(" \x00")
        if not stripped:
            return None
        if len(stripped) > 64 or not _DECIMAL.match(stripped):
            raise InvalidValueError(tag, "value is not a number")
        raw = float(stripped)
    if isinstance(raw, int):
        if abs(raw) >= 10**18:
            raise InvalidValueError(tag, "number out of range")
        return raw
    if not isinstance(raw, float) or not math.isfinite(raw) or abs(raw) >= 1e18:
        raise InvalidValueError(tag, "value is not a finite number")
    return int(raw) if raw.is_integer() and abs(raw) < 2**53 else raw


# -- dates and times --------------------------------------------------------------------------


def date(dataset: DicomJson, tag: str) -> str | None:
    """A DA value (`YYYYMMDD`, or the ACR-NEMA `YYYY.MM.DD`) as a FHIR date `YYYY-MM-DD`."""
    value = text(dataset, tag, max_length=64)
    return None if value is None else parse_date(tag, value)


def parse_date(tag: str, value: str) -> str:
    match = _DA.match(value)
    if not match:
        raise InvalidValueError(tag, "not a DICOM date (YYYYMMDD)")
    year, month, day = (int(part) for part in match.groups())
    try:
        return _date(year, month, day).isoformat()
    except ValueError:
        raise InvalidValueError(tag, "not a calendar date") from None


def time(dataset: DicomJson, tag: str) -> str | None:
    """A TM value (`HH[MM[SS[.F{1,6}]]]`, colons tolerated) as a FHIR time `HH:MM:SS[.F]`."""
    value = text(dataset, tag, max_length=64)
    return None if value is None else parse_time(tag, value)


def parse_time(tag: str, value: str) -> str:
    match = _TM.match(value)
    if not match:
        raise InvalidValueError(tag, "not a DICOM time (HHMMSS.FFFFFF)")
    hour, minute, second, fraction = match.groups()
    if int(hour) > 23 or int(minute or 0) > 59 or int(second or 0) > 59:
        raise InvalidValueError(tag, "time out of range")
    result = f"{hour}:{minute or '00'}:{second or '00'}"
    return f"{result}.{fraction}" if fraction else result


def timezone_offset(dataset: DicomJson, tag: str = tags.TIMEZONE_OFFSET_FROM_UTC) -> str | None:
    """An offset `+HHMM`/`-HHMM` as FHIR writes it, `+HH:MM`."""
    value = text(dataset, tag, max_length=64)
    return None if value is None else parse_offset(tag, value)


def parse_offset(tag: str, value: str) -> str:
    match = _OFFSET.match(value)
    if not match:
        raise InvalidValueError(tag, "not a UTC offset (+HHMM)")
    sign, hours, minutes = match.groups()
    total = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or (sign == "-" and total > 12 * 60) or (sign == "+" and total > 14 * 60):
        raise InvalidValueError(tag, "UTC offset out of range")
    return f"{sign}{hours}:{minutes}"


def date_time(dataset: DicomJson, tag: str, default_timezone: str) -> str | None:
    """A DT value as a FHIR dateTime; a value with a time but no offset is local time in
    `default_timezone` (a fixed offset or an IANA zone name, see `timezones.default_offset`)."""
    value = text(dataset, tag, max_length=64)
    return None if value is None else parse_date_time(tag, value, default_timezone)


def parse_date_time(tag: str, value: str, default_timezone: str) -> str:
    match = _DT.match(value)
    if not match:
        raise InvalidValueError(tag, "not a DICOM date-time")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if hour is None:
        parts = [p for p in (year, month, day) if p]
        if month and day:
            return parse_date(tag, year + month + day)
        if month and not 1 <= int(month) <= 12:
            raise InvalidValueError(tag, "month out of range")
        if int(year) == 0:
            raise InvalidValueError(tag, "year out of range")
        return "-".join(parts)
    if not (month and day):
        raise InvalidValueError(tag, "date-time with a time but no full date")
    day_part = parse_date(tag, year + month + day)
    time_part = parse_time(tag, hour + (minute or "00") + (second or "00") + (fraction or ""))
    zone = parse_offset(tag, offset) if offset else default_offset(default_timezone, day_part, time_part)
    return f"{day_part}T{time_part}{zone}"


# -- person names -----------------------------------------------------------------------------


def person_names(dataset: DicomJson, tag: str) -> list[PersonName]:
    """Every non-empty PN value of the element."""
    out: list[PersonName] = []
    for raw in values(dataset, tag) or ():
        name = parse_person_name(tag, raw)
        if name is not None:
            out.append(name)
    return out


def person_name(dataset: DicomJson, tag: str) -> PersonName | None:
    names = person_names(dataset, tag)
    return names[0] if names else None


def parse_person_name(tag: str, raw: Any) -> PersonName | None:
    """A PN value: the JSON object form, or a `=`-separated string some servers send."""
    if raw is None:
        return None
    if isinstance(raw, str):
        groups = raw.split("=")
        if len(groups) > 3:
            raise InvalidValueError(tag, "more than three component groups")
        raw = dict(zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False))
    if not isinstance(raw, dict):
        raise InvalidValueError(tag, "person name is not a JSON object")
    name = PersonName(
        alphabetic=_components(tag, raw.get("Alphabetic")),
        ideographic=_components(tag, raw.get("Ideographic")),
        phonetic=_components(tag, raw.get("Phonetic")),
    )
    return name if name.alphabetic or name.ideographic or name.phonetic else None


def _components(tag: str, raw: Any) -> NameComponents | None:
    group = clean_text(tag, raw, max_length=1024)
    if group is None:
        return None
    parts = [part.strip() for part in group.split("^")]
    if len(parts) > 5:
        raise InvalidValueError(tag, "more than five name components")
    if not any(parts):
        return None
    return NameComponents(*parts)


# -- sequences and codes ----------------------------------------------------------------------


def sequence(dataset: DicomJson, tag: str) -> list[DicomJson]:
    """The items of an SQ element (empty when absent)."""
    items = values(dataset, tag) or []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidValueError(tag, "sequence item is not a JSON object")
    return items


def code_item(tag: str, item: DicomJson) -> CodeItem:
    """A code sequence item; raises when it has no code value."""
    value = (
        text(item, tags.CODE_VALUE, 64)
        or text(item, tags.LONG_CODE_VALUE, 1024)
        or text(item, tags.URN_CODE_VALUE, 1024)
    )
    if value is None:
        raise InvalidValueError(tag, "code item without a code value")
    return CodeItem(
        value=value,
        scheme=text(item, tags.CODING_SCHEME_DESIGNATOR, 64),
        meaning=text(item, tags.CODE_MEANING, 1024),
        version=text(item, tags.CODING_SCHEME_VERSION, 64),
    )


def code_items(dataset: DicomJson, tag: str) -> list[CodeItem]:
    """Every item of a code sequence; an item without a code value makes the element invalid."""
    try:
        return [code_item(tag, item) for item in sequence(dataset, tag)]
    except InvalidValueError as error:
        raise InvalidValueError(tag, error.reason) from None
