"""Radiation dose structured reports -> dose summary and irradiation event Observations.

Triggers and codes are DICOM Cast's (X-Ray Radiation Dose Report 113701, Radiopharmaceutical
Radiation Dose Report 113500; events 113706 / 113819 / 113502 with an Irradiation Event UID
113769). Unlike DICOM Cast, ids are deterministic (the SR's SOP Instance UID, and the event UID),
so a replay rewrites the same Observations instead of adding new ones. Subject and partOf are
filled in by the caller once the Patient and ImagingStudy ids are known.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dicomcast.dicom import dicomjson as dj
from dicomcast.dicom import tags
from dicomcast.dicom.dicomjson import CodeItem, DicomJson, InvalidValueError
from dicomcast.fhir.mapping.coding_schemes import scheme_system
from dicomcast.fhir.mapping.datatypes import date_time
from dicomcast.fhir.mapping.ids import resource_id
from dicomcast.fhir.mapping.issues import Issues
from dicomcast.fhir.mapping.terminology import DCM, DICOM_UID, LOINC, UCUM, codeable_concept
from dicomcast.fhir.mapping.types import MappingOptions, Resource

EVENT_CODES = frozenset({"113706", "113819", "113502"})
IRRADIATION_EVENT_UID = "113769"
TARGET_REGION = "123014"
START_OF_IRRADIATION = "113809"
SUMMARY_CODES = frozenset(
    {
        "113725", "111637", "113722", "113726", "113727", "113730", "113507", "113813",
        "113830", "123005", "113731", "113812", "349358000", "89457008", "410675002",
    }
)  # fmt: skip
EVENT_COMPONENT_CODES = frozenset({"113830", "113838", "113835", "122130", "113738", "113734"})
INTEGER_CODES = frozenset({"113731", "113812"})  # counts: valueInteger
MAX_DEPTH = 32  # SR trees are shallow; a deeper one is hostile

Node = tuple[DicomJson, CodeItem | None]


def _concept(item: DicomJson) -> CodeItem | None:
    names = dj.code_items(item, tags.CONCEPT_NAME_CODE_SEQUENCE)
    return names[0] if names else None


def _walk(root: DicomJson, skip_events: bool) -> Iterator[Node]:
    """Depth-first content items below `root` (iterative: no recursion on hostile depth)."""
    stack: list[tuple[DicomJson, int]] = [(item, 1) for item in reversed(dj.sequence(root, tags.CONTENT_SEQUENCE))]
    while stack:
        item, depth = stack.pop()
        concept = _concept(item)
        yield item, concept
        if depth >= MAX_DEPTH or (skip_events and concept and concept.value in EVENT_CODES):
            continue
        children = dj.sequence(item, tags.CONTENT_SEQUENCE)
        stack.extend((child, depth + 1) for child in reversed(children))


def _quantity(item: DicomJson) -> dict[str, Any] | None:
    for measured in dj.sequence(item, tags.MEASURED_VALUE_SEQUENCE):
        value = dj.decimal(measured, tags.NUMERIC_VALUE)
        if value is None:
            continue
        quantity: dict[str, Any] = {"value": value}
        units = dj.code_items(measured, tags.MEASUREMENT_UNITS_CODE_SEQUENCE)
        if units:
            unit = units[0]
            quantity["unit"] = unit.meaning or unit.value
            if scheme_system(unit.scheme) == UCUM:
                quantity["system"] = UCUM
                quantity["code"] = unit.value
        return quantity
    return None


def _value(item: DicomJson, concept: CodeItem, options: MappingOptions) -> dict[str, Any] | None:
    """The FHIR value[x] of a content item, by its value type."""
    value_type = (dj.text(item, tags.VALUE_TYPE, 16) or "").upper()
    if value_type == "NUM":
        quantity = _quantity(item)
        if quantity is None:
            return None
        if concept.value in INTEGER_CODES and isinstance(quantity["value"], int):
            return {"valueInteger": quantity["value"]}
        return {"valueQuantity": quantity}
    if value_type == "CODE":
        value = codeable_concept(dj.code_items(item, tags.CONCEPT_CODE_SEQUENCE))
        return {"valueCodeableConcept": value} if value else None
    if value_type == "TEXT":
        text = dj.text(item, tags.TEXT_VALUE)
        return {"valueString": text} if text else None
    if value_type == "DATETIME":
        moment = dj.date_time(item, tags.DATETIME, options.default_timezone)
        return {"valueDateTime": moment} if moment else None
    return None


def _components(
    root: DicomJson, codes: frozenset[str], skip_events: bool, options: MappingOptions, issues: Issues
) -> list[dict[str, Any]]:
    """The first value of each wanted concept below `root`, in tree order."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item, concept in _walk(root, skip_events):
        if concept is None or concept.value not in codes or concept.value in seen:
            continue
        try:
            value = _value(item, concept, options)
        except InvalidValueError as error:
            issues.invalid(error.tag, f"dose report item {concept.value}: {error.reason}")
            continue
        code = codeable_concept([concept])
        if value and code:
            seen.add(concept.value)
            out.append({"code": code, **value})
    return out


def _child(root: DicomJson, code: str) -> DicomJson | None:
    for item, concept in _walk(root, skip_events=False):
        if concept is not None and concept.value == code:
            return item
    return None


def _identifier(uid: str, use: str | None = None) -> dict[str, Any]:
    identifier = {"system": DICOM_UID, "value": f"urn:oid:{uid}"}
    return {"use": use, **identifier} if use else identifier


def _summary(
    data: DicomJson, sop_uid: str, accession: dict[str, Any] | None, options: MappingOptions, issues: Issues
) -> Resource:
    observation: Resource = {
        "resourceType": "Observation",
        "id": resource_id("Observation", sop_uid),
        "identifier": [_identifier(sop_uid)] + ([accession] if accession else []),
        "status": "final",
        "code": {
            "coding": [{"system": LOINC, "code": "73569-6", "display": "Radiation exposure and protection information"}]
        },
    }
    day = issues.optional(lambda: dj.date(data, tags.CONTENT_DATE), None)
    time = issues.optional(lambda: dj.time(data, tags.CONTENT_TIME), None)
    offset = issues.optional(lambda: dj.timezone_offset(data), None)
    effective = date_time(day, time, offset, options.default_timezone)
    if effective:
        observation["effectiveDateTime"] = effective
    components = _components(data, SUMMARY_CODES, True, options, issues)
    if components:
        observation["component"] = components
    return observation


def _event(item: DicomJson, sop_uid: str, options: MappingOptions, issues: Issues) -> Resource | None:
    uid_item = _child(item, IRRADIATION_EVENT_UID)
    if uid_item is None:
        return None
    event_uid = issues.optional(lambda: dj.uid(uid_item, tags.UID), None)
    if event_uid is None:
        issues.invalid(tags.UID, "Irradiation Event UID missing or invalid; event left out")
        return None
    observation: Resource = {
        "resourceType": "Observation",
        "id": resource_id("Observation", sop_uid, event_uid),
        "identifier": [_identifier(event_uid), _identifier(sop_uid, "secondary")],
        "status": "final",
        "code": {"coding": [{"system": DCM, "code": "113852", "display": "Irradiation Event"}]},
    }
    start = _child(item, START_OF_IRRADIATION)
    if start is not None:
        moment = issues.optional(lambda: dj.date_time(start, tags.DATETIME, options.default_timezone), None)
        if moment:
            observation["effectiveDateTime"] = moment
    region = _child(item, TARGET_REGION)
    if region is not None:
        site = issues.optional(lambda: codeable_concept(dj.code_items(region, tags.CONCEPT_CODE_SEQUENCE)), None)
        if site:
            observation["bodySite"] = site
    components = _components(item, EVENT_COMPONENT_CODES, False, options, issues)
    if components:
        observation["component"] = components
    return observation


def read_dose_report(
    data: DicomJson, sop_uid: str, accession: dict[str, Any] | None, options: MappingOptions, issues: Issues
) -> list[Resource]:
    """The Observations of one dose SR (summary first, then events in tree order)."""
    try:
        observations = [_summary(data, sop_uid, accession, options, issues)]
        for item, concept in _walk(data, skip_events=False):
            if concept is not None and concept.value in EVENT_CODES:
                event = _event(item, sop_uid, options, issues)
                if event is not None:
                    observations.append(event)
    except InvalidValueError as error:
        issues.invalid(error.tag, f"dose report unreadable: {error.reason}")
        return []
    return observations


def owned_by(observation: Resource, sop_uid: str) -> bool:
    """Whether an existing Observation came from the SR instance `sop_uid`."""
    if observation.get("id") == resource_id("Observation", sop_uid):
        return True
    wanted = f"urn:oid:{sop_uid}"
    return any(
        isinstance(i, dict) and i.get("system") == DICOM_UID and i.get("value") == wanted
        for i in observation.get("identifier") or ()
    )
