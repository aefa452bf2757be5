"""FHIR data types from DICOM values: dateTime with a time zone, HumanName, display names."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dicomcast.dicom.dicomjson import NameComponents, PersonName
from dicomcast.errors import MappingError
from dicomcast.fhir.mapping.terminology import NAME_REPRESENTATION

_FIXED_OFFSET = re.compile(r"^(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$")


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError("default time zone is neither an offset like +01:00 nor an IANA zone name") from None


def default_offset(default_timezone: str, day: str, time: str) -> str:
    """The offset to use when the data has none: a fixed `+HH:MM`, or an IANA zone's offset that
    day (daylight saving included). Raises MappingError for a setting that is neither.
    """
    if _FIXED_OFFSET.match(default_timezone):
        return default_timezone
    zone = _zone(default_timezone)
    local = datetime.fromisoformat(f"{day}T{time[:8]}").replace(tzinfo=zone)
    offset = local.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def date_time(day: str | None, time: str | None, offset: str | None, default_timezone: str) -> str | None:
    """FHIR dateTime from DA + TM (+ offset): a time needs a zone, so the default fills in."""
    if day is None:
        return None
    if time is None:
        return day
    zone = offset or default_offset(default_timezone, day, time)
    return f"{day}T{time}{zone}"


def _given(parts: NameComponents) -> list[str]:
    return [word for part in (parts.given, parts.middle) for word in part.split() if word]


def human_name(parts: NameComponents, representation: str | None = None) -> dict[str, Any]:
    """A `usual` HumanName from one PN component group; ideographic/phonetic groups carry the
    ISO 21090 representation extension (IDE / SYL) so they stay apart from the alphabetic one.
    """
    name: dict[str, Any] = {"use": "usual"}
    if representation:
        name["extension"] = [{"url": NAME_REPRESENTATION, "valueCode": representation}]
    if parts.family:
        name["family"] = parts.family
    given = _given(parts)
    if given:
        name["given"] = given
    if parts.prefix:
        name["prefix"] = parts.prefix.split()
    if parts.suffix:
        name["suffix"] = parts.suffix.split()
    return name


def human_names(person: PersonName) -> list[dict[str, Any]]:
    """Every component group of a PN as a HumanName: alphabetic first, then ideographic, phonetic."""
    names: list[dict[str, Any]] = []
    for parts, representation in (
        (person.alphabetic, None),
        (person.ideographic, "IDE"),
        (person.phonetic, "SYL"),
    ):
        if parts is not None:
            names.append(human_name(parts, representation))
    return names


def display_name(person: PersonName) -> str | None:
    """A person's name for `Reference.display`: prefix, given, middle, family, suffix."""
    parts = person.alphabetic or person.ideographic or person.phonetic
    if parts is None:
        return None
    words = [parts.prefix, parts.given, parts.middle, parts.family, parts.suffix]
    text = " ".join(word for word in words if word)
    return text or None
