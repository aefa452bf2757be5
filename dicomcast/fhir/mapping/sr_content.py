"""Reading a DICOM SR content tree (PS3.3 C.17.3): walk, find, and turn content items into FHIR values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dicomcast.dicom import dicomjson as dj
from dicomcast.dicom import tags
from dicomcast.dicom.dicomjson import CodeItem, DicomJson, InvalidValueError
from dicomcast.fhir.mapping.coding_schemes import scheme_system
from dicomcast.fhir.mapping.issues import Issues
from dicomcast.fhir.mapping.terminology import UCUM, codeable_concept

MAX_DEPTH = 32  # SR trees are shallow; a deeper one is hostile
INTEGER_CODES = frozenset({"113731", "113812"})  # counts: valueInteger

Node = tuple[DicomJson, CodeItem | None]


def concept(item: DicomJson) -> CodeItem | None:
    """The Concept Name of a content item."""
    names = dj.code_items(item, tags.CONCEPT_NAME_CODE_SEQUENCE)
    return names[0] if names else None


def walk(root: DicomJson, skip: frozenset[str] = frozenset()) -> Iterator[Node]:
    """Depth-first content items below `root`, not descending into items named in `skip`
    (iterative: no recursion on hostile depth)."""
    stack: list[tuple[DicomJson, int]] = [(item, 1) for item in reversed(dj.sequence(root, tags.CONTENT_SEQUENCE))]
    while stack:
        item, depth = stack.pop()
        name = concept(item)
        yield item, name
        if depth >= MAX_DEPTH or (name is not None and name.value in skip):
            continue
        children = dj.sequence(item, tags.CONTENT_SEQUENCE)
        stack.extend((child, depth + 1) for child in reversed(children))


def find(root: DicomJson, code: str, skip: frozenset[str] = frozenset()) -> DicomJson | None:
    """The first content item named `code` below `root`."""
    for item, name in walk(root, skip):
        if name is not None and name.value == code:
            return item
    return None


def find_all(root: DicomJson, code: str, skip: frozenset[str] = frozenset()) -> list[DicomJson]:
    return [item for item, name in walk(root, skip) if name is not None and name.value == code]


def moment(item: DicomJson, default_timezone: str) -> str | None:
    """A DATETIME item as a FHIR dateTime; one without an offset is local time in
    `default_timezone` (a fixed `+HH:MM` or an IANA zone, daylight saving included)."""
    return dj.date_time(item, tags.DATETIME, default_timezone)


def quantity(item: DicomJson) -> dict[str, Any] | None:
    """A NUM item's measured value as a Quantity, with the UCUM code when the unit is UCUM."""
    for measured in dj.sequence(item, tags.MEASURED_VALUE_SEQUENCE):
        value = dj.decimal(measured, tags.NUMERIC_VALUE)
        if value is None:
            continue
        result: dict[str, Any] = {"value": value}
        units = dj.code_items(measured, tags.MEASUREMENT_UNITS_CODE_SEQUENCE)
        if units:
            unit = units[0]
            result["unit"] = unit.meaning or unit.value
            if scheme_system(unit.scheme) == UCUM:
                result["system"] = UCUM
                result["code"] = unit.value
        return result
    return None


def value(item: DicomJson, name: CodeItem, default_timezone: str) -> dict[str, Any] | None:
    """The FHIR value[x] of a content item, by its value type."""
    value_type = (dj.text(item, tags.VALUE_TYPE, 16) or "").upper()
    if value_type == "NUM":
        found = quantity(item)
        if found is None:
            return None
        if name.value in INTEGER_CODES and isinstance(found["value"], int):
            return {"valueInteger": found["value"]}
        return {"valueQuantity": found}
    if value_type == "CODE":
        coded = codeable_concept(dj.code_items(item, tags.CONCEPT_CODE_SEQUENCE))
        return {"valueCodeableConcept": coded} if coded else None
    if value_type == "TEXT":
        text = dj.text(item, tags.TEXT_VALUE)
        return {"valueString": text} if text else None
    if value_type == "DATETIME":
        found_moment = moment(item, default_timezone)
        return {"valueDateTime": found_moment} if found_moment else None
    return None


def components(
    root: DicomJson, codes: frozenset[str], skip: frozenset[str], default_timezone: str, issues: Issues
) -> list[dict[str, Any]]:
    """Observation components: the first value of each wanted concept below `root`, in tree order."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item, name in walk(root, skip):
        if name is None or name.value not in codes or name.value in seen:
            continue
        try:
            found = value(item, name, default_timezone)
        except InvalidValueError as error:
            issues.invalid(error.tag, f"dose report item {name.value}: {error.reason}")
            continue
        code = codeable_concept([name])
        if found and code:
            seen.add(name.value)
            out.append({"code": code, **found})
    return out
