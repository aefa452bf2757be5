"""FHIR data types from DICOM values: dateTime with a time zone, HumanName, display names."""

from __future__ import annotations

from typing import Any

from dicomcast.dicom.dicomjson import NameComponents, PersonName
from dicomcast.dicom.timezones import default_offset
from dicomcast.fhir.mapping.terminology import NAME_REPRESENTATION


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
