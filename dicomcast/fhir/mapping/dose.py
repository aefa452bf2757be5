"""Radiation dose structured reports -> Observations per HL7's Radiation Dose Summary IG.

Triggers are DICOM Cast's (X-Ray Radiation Dose Report 113701 for projection X-ray TID 10001 and
CT TID 10011, Radiopharmaceutical Radiation Dose Report 113500 TID 10021). One SR gives:
- the **dose summary** (IG profile `radiation-dose-summary`): LOINC 73569-6, the SR's SOP Instance
  UID as identifier, the accession as `basedOn` ServiceRequest identifier, `procedureReported`
  (121058) and the accumulated dose values as components, effective = Start of X-Ray Irradiation
  (113809; the administration start 123003 for radiopharmaceuticals; else Content Date/Time), a text
  summary as `valueString`, and `hasMember` linking the Observations below;
- for a biplane system, one **accumulated dose per plane** (113702 with Acquisition Plane 113764),
  so plane A and plane B values stay apart instead of the second plane being dropped;
- one **irradiation event** per X-ray/CT event with an Irradiation Event UID (113769), effective =
  DateTime Started (111526).
Ids are deterministic (the SR's SOP Instance UID, plus the event UID or plane), so a replay writes
the same Observations. Subject, partOf and focus are filled in by the caller (engine).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dicomcast.dicom import dicomjson as dj
from dicomcast.dicom import tags
from dicomcast.dicom.dicomjson import DicomJson, InvalidValueError
from dicomcast.fhir.mapping import sr_content as sr
from dicomcast.fhir.mapping.coding_schemes import SNOMED
from dicomcast.fhir.mapping.datatypes import date_time
from dicomcast.fhir.mapping.ids import resource_id
from dicomcast.fhir.mapping.issues import Issues
from dicomcast.fhir.mapping.terminology import DCM, DICOM_UID, LOINC, codeable_concept
from dicomcast.fhir.mapping.types import MappingOptions, Resource

DICOM_IDENTIFIER_TYPE = "http://hl7.org/fhir/uv/radiation-dose-summary/CodeSystem/dicom-identifier-type"
RADIOPHARMACEUTICAL_REPORT = "113500"
EVENT_CODES = frozenset({"113706", "113819"})  # Irradiation Event X-Ray Data, CT Acquisition
ACCUMULATED_XRAY = "113702"
ACQUISITION_PLANE = "113764"
IRRADIATION_EVENT_UID = "113769"
TARGET_REGION = "123014"
PROCEDURE_REPORTED = "121058"
START_OF_IRRADIATION = "113809"
DATETIME_STARTED = "111526"
RADIOPHARMACEUTICAL_START = "123003"
CT_ACCUMULATED = "113811"
SUMMARY_CODES = frozenset(
    {
        "113725", "111637", "113722", "113726", "113727", "113728", "113729", "113730", "113731",
        "113813", "113812", "113507", "349358000", "89457008", "123005", "410675002",
    }
)  # fmt: skip
EVENT_COMPONENT_CODES = frozenset(
    {"113764", "113721", "113820", "122130", "113738", "113830", "113838", "113835", "113734"}
)
SUMMARY_CODE = {
    "system": LOINC,
    "code": "73569-6",
    "display": "Radiation exposure and protection information [Description] Document Diagnostic imaging",
}
# ProcedureReportedTypeVS of the IG, for reports that do not say (121058 absent).
PROJECTION_XRAY = {"system": DCM, "code": "113704", "display": "Projection X-Ray"}
COMPUTED_TOMOGRAPHY = {"system": SNOMED, "code": "77477000", "display": "Computerized tomography"}
RADIOPHARMACEUTICAL = {"system": DCM, "code": "113502", "display": "Radiopharmaceutical Administration"}


def _identifier(kind: str, display: str, uid: str, use: str | None = None) -> dict[str, Any]:
    identifier: dict[str, Any] = {"use": use} if use else {}
    identifier["type"] = {"coding": [{"system": DICOM_IDENTIFIER_TYPE, "code": kind, "display": display}]}
    return {**identifier, "system": DICOM_UID, "value": f"urn:oid:{uid}"}


def study_identifier(study_uid: str) -> dict[str, Any]:
    """The Study Instance UID as the IG writes it in `partOf.identifier`."""
    return _identifier("study-instance-uid", "Study Instance UID", study_uid)


def _sr_identifier(sop_uid: str, use: str | None = None) -> dict[str, Any]:
    return _identifier("sop-instance-uid", "SOP Instance UID", sop_uid, use)


def _root_code(data: DicomJson) -> str | None:
    names = dj.code_items(data, tags.CONCEPT_NAME_CODE_SEQUENCE)
    return names[0].value if names else None


def _procedure_reported(data: DicomJson, is_radiopharmaceutical: bool) -> dict[str, Any]:
    item = sr.find(data, PROCEDURE_REPORTED, EVENT_CODES)
    reported = codeable_concept(dj.code_items(item, tags.CONCEPT_CODE_SEQUENCE)) if item is not None else None
    if reported is None:
        if is_radiopharmaceutical:
            fallback = RADIOPHARMACEUTICAL
        elif sr.find(data, CT_ACCUMULATED) is not None or sr.find(data, "113819") is not None:
            fallback = COMPUTED_TOMOGRAPHY
        else:
            fallback = PROJECTION_XRAY
        reported = {"coding": [fallback], "text": fallback["display"]}
    code = {"coding": [{"system": DCM, "code": PROCEDURE_REPORTED, "display": "Procedure reported"}]}
    return {"code": code, "valueCodeableConcept": reported}


def _moment_of(item: DicomJson | None, options: MappingOptions, issues: Issues) -> str | None:
    if item is None:
        return None
    try:
        return sr.moment(item, options.default_timezone)
    except InvalidValueError as error:
        issues.invalid(error.tag, f"dose report date-time: {error.reason}")
        return None


def _effective(data: DicomJson, options: MappingOptions, issues: Issues) -> str | None:
    """Start of X-Ray Irradiation; the administration start for radiopharmaceuticals; else Content
    Date/Time (which is when the report was made, not the irradiation)."""
    for code in (START_OF_IRRADIATION, RADIOPHARMACEUTICAL_START):
        found = _moment_of(sr.find(data, code, EVENT_CODES), options, issues)
        if found:
            return found
    day = issues.optional(lambda: dj.date(data, tags.CONTENT_DATE), None)
    time = issues.optional(lambda: dj.time(data, tags.CONTENT_TIME), None)
    offset = issues.optional(lambda: dj.timezone_offset(data), None)
    return date_time(day, time, offset, options.default_timezone)


def _describe(component: dict[str, Any]) -> str:
    name = component["code"].get("text") or component["code"]["coding"][0].get("code")
    if "valueQuantity" in component:
        amount = component["valueQuantity"]
        return f"{name} = {amount['value']} {amount.get('unit', '')}".rstrip()
    if "valueInteger" in component:
        return f"{name} = {component['valueInteger']}"
    concept = component.get("valueCodeableConcept") or {}
    return f"{name} = {concept.get('text') or component.get('valueString') or component.get('valueDateTime')}"


def _summary_text(parts: list[tuple[str | None, list[dict[str, Any]]]]) -> str:
    """The IG's valueString: the dose values as text, plane by plane where there are planes."""
    texts = []
    for label, listed in parts:
        shown = [c for c in listed if c["code"]["coding"][0].get("code") not in (PROCEDURE_REPORTED, ACQUISITION_PLANE)]
        values = "; ".join(_describe(c) for c in shown)
        if values:
            texts.append(f"{label}: {values}" if label else values)
    return " | ".join(texts) or "No dose values reported"


def _planes(
    data: DicomJson, sop_uid: str, effective: str | None, options: MappingOptions, issues: Issues
) -> list[Resource]:
    """One Observation per Accumulated X-Ray Dose container when a biplane system reports two."""
    containers = sr.find_all(data, ACCUMULATED_XRAY, EVENT_CODES)
    if len(containers) < 2:
        return []
    out: list[Resource] = []
    for index, container in enumerate(containers, start=1):
        plane = sr.find(container, ACQUISITION_PLANE)
        plane_items = dj.code_items(plane, tags.CONCEPT_CODE_SEQUENCE) if plane is not None else []
        key = plane_items[0].value if plane_items else f"container-{index}"
        codes = SUMMARY_CODES | {ACQUISITION_PLANE}
        observation: Resource = {
            "resourceType": "Observation",
            "id": resource_id("Observation", sop_uid, "plane", key),
            "identifier": [_sr_identifier(sop_uid, "secondary")],
            "status": "final",
            "code": {"coding": [{"system": DCM, "code": ACCUMULATED_XRAY, "display": "Accumulated X-Ray Dose Data"}]},
        }
        if effective:
            observation["effectiveDateTime"] = effective
        found = sr.components(container, codes, EVENT_CODES, options.default_timezone, issues)
        if found:
            observation["component"] = found
        out.append(observation)
    return out


def _summary(
    data: DicomJson,
    sop_uid: str,
    accession: dict[str, Any] | None,
    members: tuple[list[Resource], list[Resource]],
    effective: str | None,
    options: MappingOptions,
    issues: Issues,
) -> Resource:
    planes, events = members
    radiopharmaceutical = _root_code(data) == RADIOPHARMACEUTICAL_REPORT
    observation: Resource = {
        "resourceType": "Observation",
        "id": resource_id("Observation", sop_uid),
        "identifier": [_sr_identifier(sop_uid)],
    }
    if accession:
        observation["basedOn"] = [{"type": "ServiceRequest", "identifier": accession}]
    observation.update({"status": "final", "code": {"coding": [SUMMARY_CODE]}})
    if effective:
        observation["effectiveDateTime"] = effective
    skip = EVENT_CODES | ({ACCUMULATED_XRAY} if planes else frozenset())
    values = sr.components(data, SUMMARY_CODES, skip, options.default_timezone, issues)
    plane_parts = [(_plane_label(p), p.get("component", [])) for p in planes]
    observation["valueString"] = _summary_text([(None, values), *plane_parts])
    members_ = [*planes, *events]
    if members_:
        observation["hasMember"] = [{"reference": f"Observation/{m['id']}"} for m in members_]
    observation["component"] = [_procedure_reported(data, radiopharmaceutical), *values]
    return observation


def _plane_label(plane: Resource) -> str | None:
    for component in plane.get("component", []):
        if component["code"]["coding"][0].get("code") == ACQUISITION_PLANE:
            return str(component.get("valueCodeableConcept", {}).get("text") or "Plane")
    return None


def _event(item: DicomJson, sop_uid: str, options: MappingOptions, issues: Issues) -> Resource | None:
    uid_item = sr.find(item, IRRADIATION_EVENT_UID)
    if uid_item is None:
        return None
    event_uid = issues.optional(lambda: dj.uid(uid_item, tags.UID), None)
    if event_uid is None:
        issues.invalid(tags.UID, "Irradiation Event UID missing or invalid; event left out")
        return None
    observation: Resource = {
        "resourceType": "Observation",
        "id": resource_id("Observation", sop_uid, event_uid),
        "identifier": [
            _identifier("irradiation-event-uid", "Irradiation Event UID", event_uid),
            _sr_identifier(sop_uid, "secondary"),
        ],
        "status": "final",
        "code": {"coding": [{"system": DCM, "code": "113852", "display": "Irradiation Event"}]},
    }
    for code in (DATETIME_STARTED, START_OF_IRRADIATION):
        moment = _moment_of(sr.find(item, code), options, issues)
        if moment:
            observation["effectiveDateTime"] = moment
            break
    region = sr.find(item, TARGET_REGION)
    if region is not None:
        site = issues.optional(lambda: codeable_concept(dj.code_items(region, tags.CONCEPT_CODE_SEQUENCE)), None)
        if site:
            observation["bodySite"] = site
    components = sr.components(item, EVENT_COMPONENT_CODES, frozenset(), options.default_timezone, issues)
    if components:
        observation["component"] = components
    return observation


def read_dose_report(
    data: DicomJson, sop_uid: str, accession: dict[str, Any] | None, options: MappingOptions, issues: Issues
) -> list[Resource]:
    """The Observations of one dose SR: the summary first, then its planes and events in tree order.

    A date-time without an offset is in the SR's Timezone Offset From UTC if it has one (PS3.5),
    else in the configured default zone.
    """
    offset = issues.optional(lambda: dj.timezone_offset(data), None)
    if offset:
        options = replace(options, default_timezone=offset)
    try:
        events = [
            event
            for item, name in sr.walk(data, EVENT_CODES)
            if name is not None and name.value in EVENT_CODES
            for event in [_event(item, sop_uid, options, issues)]
            if event is not None
        ]
        effective = _effective(data, options, issues)
        planes = _planes(data, sop_uid, effective, options, issues)
        summary = _summary(data, sop_uid, accession, (planes, events), effective, options, issues)
    except InvalidValueError as error:
        issues.invalid(error.tag, f"dose report unreadable: {error.reason}")
        return []
    return [summary, *planes, *events]


def owned_by(observation: Resource, sop_uid: str) -> bool:
    """Whether an existing Observation came from the SR instance `sop_uid`."""
    if observation.get("id") == resource_id("Observation", sop_uid):
        return True
    wanted = f"urn:oid:{sop_uid}"
    return any(
        isinstance(i, dict) and i.get("system") == DICOM_UID and i.get("value") == wanted
        for i in observation.get("identifier") or ()
    )
