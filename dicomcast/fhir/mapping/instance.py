"""One instance's DICOM JSON -> the ImagingStudy, series and instance elements it sets.

Required values (StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, SOPClassUID, Modality,
PatientID) missing or invalid raise MappingError: the entry fails. Optional values go through
`Issues.optional`: left out with a warning (or fail the entry when validation is enforced).
Elements come out already shaped for the target FHIR release (R4 or R5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dicomcast.dicom import dicomjson as dj
from dicomcast.dicom import tags
from dicomcast.dicom.dicomjson import DicomJson
from dicomcast.dicom.models import ChangeEntry
from dicomcast.errors import MappingError
from dicomcast.fhir.mapping import patient as patients
from dicomcast.fhir.mapping.coding_schemes import scheme_system
from dicomcast.fhir.mapping.datatypes import date_time, display_name
from dicomcast.fhir.mapping.issues import Issues, required
from dicomcast.fhir.mapping.reads import StudyReads
from dicomcast.fhir.mapping.terminology import (
    DCM,
    PARTICIPATION_TYPE,
    RFC3986,
    V2_0203,
    body_part_coding,
    codeable_concept,
    coding,
    is_code,
    laterality_coding,
)
from dicomcast.fhir.mapping.types import FhirVersion, MappingOptions

DOSE_REPORT_CODES = frozenset({"113701", "113500"})  # X-Ray / Radiopharmaceutical Radiation Dose Report
# Series elements read from image-level attributes: set only where every instance agrees (study.py).
IMAGE_LEVEL = {
    "bodySite": ("BodyPartExamined", tags.BODY_PART_EXAMINED),
    "laterality": ("ImageLaterality", tags.IMAGE_LATERALITY),
}


@dataclass
class InstanceFacts:
    """What one instance contributes. `study` holds ImagingStudy elements by name."""

    sequence: int
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    patient: patients.PatientFacts
    study: dict[str, Any] = field(default_factory=dict)
    accession: dict[str, Any] | None = None  # Identifier of type ACSN
    requested_procedure: str | None = None  # Requested Procedure Code Sequence meaning, for basedOn
    study_id: str | None = None
    series: dict[str, Any] = field(default_factory=dict)
    image_level: dict[str, Any] = field(default_factory=dict)  # IMAGE_LEVEL elements, already shaped
    instance: dict[str, Any] = field(default_factory=dict)
    is_dose_report: bool = False


def _concept(version: FhirVersion, value: dict[str, Any]) -> dict[str, Any]:
    """R4 Coding stays a Coding; R5 wants a CodeableConcept."""
    return {"coding": [value]} if version is FhirVersion.R5 else value


def _reference(version: FhirVersion, concept: dict[str, Any]) -> dict[str, Any]:
    """R5 CodeableReference(concept) around a CodeableConcept; R4 keeps the CodeableConcept."""
    return {"concept": concept} if version is FhirVersion.R5 else concept


def _uid(data: DicomJson, tag: str, what: str, expected: str) -> str:
    value = required(lambda: dj.uid(data, tag), tag, what)
    if expected and value != expected:
        raise MappingError(f"{what} of the metadata differs from the change feed entry", tag=tag)
    return value


def extract(
    entry: ChangeEntry, data: DicomJson, options: MappingOptions, issues: Issues, reads: StudyReads | None = None
) -> InstanceFacts:
    """The facts of one create/update entry. Raises MappingError when the entry cannot be used.
    `reads`: what earlier instances of the study read, reused where the same (reads.py)."""
    study_uid = _uid(data, tags.STUDY_INSTANCE_UID, "StudyInstanceUID", entry.study_uid)
    series_uid = _uid(data, tags.SERIES_INSTANCE_UID, "SeriesInstanceUID", entry.series_uid)
    sop_uid = _uid(data, tags.SOP_INSTANCE_UID, "SOPInstanceUID", entry.sop_instance_uid)
    sop_class = required(lambda: dj.uid(data, tags.SOP_CLASS_UID), tags.SOP_CLASS_UID, "SOPClassUID")
    modality = required(lambda: dj.text(data, tags.MODALITY, 64), tags.MODALITY, "Modality")
    if len(modality) > 16 or not is_code(modality):
        raise MappingError("invalid Modality: not a DICOM code string", tag=tags.MODALITY)
    reads = reads or StudyReads()
    subject = reads.part("study", data, issues, lambda d, i: _subject(d, options, i))
    series, image_level = reads.part(
        ("series", series_uid, modality, subject.offset),
        data,
        issues,
        lambda d, i: _series(d, options, i, subject.offset, series_uid, modality),
    )
    return InstanceFacts(
        sequence=entry.sequence,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_instance_uid=sop_uid,
        patient=subject.patient,
        study=subject.study,
        accession=subject.accession,
        requested_procedure=subject.requested_procedure,
        study_id=subject.study_id,
        series=series,
        image_level=image_level,
        instance=_instance(data, issues, sop_uid, sop_class),
        is_dose_report=_is_dose_report(data),
    )


@dataclass(frozen=True)
class _Subject:
    """The patient and study attributes an instance carries (the same in most of a study's)."""

    patient: patients.PatientFacts
    offset: str | None
    study: dict[str, Any]
    accession: dict[str, Any] | None
    requested_procedure: str | None
    study_id: str | None


def _subject(data: DicomJson, options: MappingOptions, issues: Issues) -> _Subject:
    key = required(lambda: patients.read_key(data, options, issues), tags.PATIENT_ID, "PatientID")
    patient = patients.read_facts(data, key, options, issues)
    offset = issues.optional(lambda: dj.timezone_offset(data), None)
    study = _study(data, options, issues, offset)
    accession = issues.optional(lambda: _accession(data, options), None)
    requested = issues.optional_list(lambda: dj.code_items(data, tags.REQUESTED_PROCEDURE_CODE_SEQUENCE))
    return _Subject(
        patient=patient,
        offset=offset,
        study=study,
        accession=accession,
        requested_procedure=next((c.meaning or c.value for c in requested), None),
        study_id=issues.optional(lambda: dj.text(data, tags.STUDY_ID, 64), None),
    )


def _started(
    data: DicomJson, options: MappingOptions, issues: Issues, offset: str | None, tags_: tuple[str, str]
) -> str | None:
    day = issues.optional(lambda: dj.date(data, tags_[0]), None)
    time = issues.optional(lambda: dj.time(data, tags_[1]), None)
    return date_time(day, time, offset, options.default_timezone)


def _study(data: DicomJson, options: MappingOptions, issues: Issues, offset: str | None) -> dict[str, Any]:
    """The ImagingStudy elements an instance sets, by name."""
    version = options.fhir_version
    study: dict[str, Any] = {}
    study["started"] = _started(data, options, issues, offset, (tags.STUDY_DATE, tags.STUDY_TIME))
    study["description"] = issues.optional(lambda: dj.text(data, tags.STUDY_DESCRIPTION), None)
    referrers = issues.optional_list(
        lambda: _people(data, tags.REFERRING_PHYSICIAN_NAME, tags.REFERRING_PHYSICIAN_IDENTIFICATION_SEQUENCE)
    )
    study["referrer"] = referrers[0] if referrers else None
    interpreters = issues.optional_list(
        lambda: _people(
            data, tags.NAME_OF_PHYSICIANS_READING_STUDY, tags.PHYSICIANS_READING_STUDY_IDENTIFICATION_SEQUENCE
        )
    )
    study["interpreter"] = interpreters or None
    procedures = issues.optional_list(lambda: dj.code_items(data, tags.PROCEDURE_CODE_SEQUENCE))
    concepts = [c for c in (codeable_concept([item]) for item in procedures) if c]
    name = "procedure" if version is FhirVersion.R5 else "procedureCode"
    study[name] = [_reference(version, c) for c in concepts] or None
    reasons = issues.optional_list(lambda: _reasons(data))
    study["reason" if version is FhirVersion.R5 else "reasonCode"] = [_reference(version, c) for c in reasons] or None
    location = issues.optional(lambda: dj.text(data, tags.INSTITUTIONAL_DEPARTMENT_NAME), None)
    location = location or issues.optional(lambda: dj.text(data, tags.PERFORMED_LOCATION), None)
    study["location"] = {"display": location} if location else None
    if version is FhirVersion.R5:
        study["interpreter"] = None  # read all the same: its warnings are the same in both releases
    return {name_: value for name_, value in study.items() if value is not None}


def _reasons(data: DicomJson) -> list[dict[str, Any]]:
    """Reasons for the requested procedure (coded or as text, at top level or per request) and
    for the performed procedure (coded)."""
    out: list[dict[str, Any]] = []
    for item in dj.code_items(data, tags.REASON_FOR_PERFORMED_PROCEDURE_CODE_SEQUENCE):
        concept = codeable_concept([item])
        if concept and concept not in out:
            out.append(concept)
    for source in [data, *dj.sequence(data, tags.REQUEST_ATTRIBUTES_SEQUENCE)]:
        for item in dj.code_items(source, tags.REASON_FOR_REQUESTED_PROCEDURE_CODE_SEQUENCE):
            concept = codeable_concept([item])
            if concept and concept not in out:
                out.append(concept)
        reason = dj.text(source, tags.REASON_FOR_THE_REQUESTED_PROCEDURE)
        if reason and {"text": reason} not in out:
            out.append({"text": reason})
    return out


def _accession(data: DicomJson, options: MappingOptions) -> dict[str, Any] | None:
    value = dj.text(data, tags.ACCESSION_NUMBER, 64)
    if value is None:
        return None
    identifier: dict[str, Any] = {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}}
    for item in dj.sequence(data, tags.ISSUER_OF_ACCESSION_NUMBER_SEQUENCE):
        system = patients.hierarchic_designator(item, options)
        if system:
            identifier["system"] = system
            break
    identifier["value"] = value
    return identifier


def _series(
    data: DicomJson,
    options: MappingOptions,
    issues: Issues,
    offset: str | None,
    series_uid: str,
    modality: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The series elements an instance sets, and its IMAGE_LEVEL ones (both by name)."""
    version = options.fhir_version
    image_level: dict[str, Any] = {}
    series: dict[str, Any] = {
        "uid": series_uid,
        "modality": _concept(version, {"system": DCM, "code": modality}),
    }
    number = issues.optional(lambda: dj.integer(data, tags.SERIES_NUMBER), None)
    if number is not None and number < 0:
        issues.invalid(tags.SERIES_NUMBER, "SeriesNumber is negative")
    elif number is not None:
        series["number"] = number
    description = issues.optional(lambda: dj.text(data, tags.SERIES_DESCRIPTION), None)
    if description:
        series["description"] = description
    started = _started(data, options, issues, offset, (tags.SERIES_DATE, tags.SERIES_TIME))
    if started:
        series["started"] = started
    body_site = issues.optional(lambda: _body_site(data, issues), None)
    if body_site:
        body_site = {"concept": {"coding": [body_site]}} if version is FhirVersion.R5 else body_site
        image_level["bodySite"] = body_site
    laterality = issues.optional(lambda: _laterality(data, tags.LATERALITY, issues), None)
    if laterality:
        series["laterality"] = _concept(version, laterality)
    else:
        image_laterality = issues.optional(lambda: _laterality(data, tags.IMAGE_LATERALITY, issues), None)
        if image_laterality:
            image_level["laterality"] = _concept(version, image_laterality)
    specimens = issues.optional_list(lambda: _specimens(data, options))
    if specimens:
        series["specimen"] = specimens
    performers = issues.optional_list(lambda: _performers(data))
    if performers:
        series["performer"] = performers
    return series, image_level


def _body_site(data: DicomJson, issues: Issues) -> dict[str, Any] | None:
    """Body Part Examined mapped to SNOMED CT (Annex L); else the Anatomic Region code; else none."""
    body_part = dj.text(data, tags.BODY_PART_EXAMINED, 64)
    mapped = body_part_coding(body_part) if body_part else None
    if mapped:
        return mapped
    regions = dj.code_items(data, tags.ANATOMIC_REGION_SEQUENCE)
    region = coding(regions[0]) if regions else None
    if body_part and region is None:
        issues.note(tags.BODY_PART_EXAMINED, "Body Part Examined is no PS3.16 Annex L term; bodySite left out")
    return region


def _laterality(data: DicomJson, tag: str, issues: Issues) -> dict[str, Any] | None:
    value = dj.text(data, tag, 16)
    if value is None:
        return None
    mapped = laterality_coding(value)
    if mapped is None:
        issues.invalid(tag, "laterality is not R, L, B or U")
    return mapped


def _specimens(data: DicomJson, options: MappingOptions) -> list[dict[str, Any]]:
    """Specimen Identifier (+ issuer) as logical references."""
    out: list[dict[str, Any]] = []
    for item in dj.sequence(data, tags.SPECIMEN_DESCRIPTION_SEQUENCE):
        value = dj.text(item, tags.SPECIMEN_IDENTIFIER, 64)
        if value is None:
            continue
        identifier: dict[str, Any] = {"value": value}
        for issuer in dj.sequence(item, tags.ISSUER_OF_THE_SPECIMEN_IDENTIFIER_SEQUENCE):
            system = patients.hierarchic_designator(issuer, options)
            if system:
                identifier = {"system": system, "value": value}
                break
        out.append({"type": "Specimen", "identifier": identifier})
    return out


def _function(code: str, text: str) -> dict[str, Any]:
    return {"coding": [{"system": PARTICIPATION_TYPE, "code": code}], "text": text}


def _performers(data: DicomJson) -> list[dict[str, Any]]:
    """Performing physicians (PRF) and operators (SPRF): display name and identifier."""
    out: list[dict[str, Any]] = []
    for name_tag, id_tag, code, text in (
        (
            tags.PERFORMING_PHYSICIAN_NAME,
            tags.PERFORMING_PHYSICIAN_IDENTIFICATION_SEQUENCE,
            "PRF",
            "Performing physician",
        ),
        (tags.OPERATORS_NAME, tags.OPERATOR_IDENTIFICATION_SEQUENCE, "SPRF", "Operator"),
    ):
        for actor in _people(data, name_tag, id_tag):
            out.append({"function": _function(code, text), "actor": actor})
    return out


def _people(data: DicomJson, name_tag: str, id_tag: str) -> list[dict[str, Any]]:
    """References to the people a PN element names, each with the identifier its identification
    sequence item holds (PS3.3 10.1: items in the order of the names)."""
    names = [display_name(p) for p in dj.person_names(data, name_tag)]
    identifiers = [_person_identifier(item) for item in dj.sequence(data, id_tag)]
    out: list[dict[str, Any]] = []
    for index in range(max(len(names), len(identifiers))):
        reference: dict[str, Any] = {}
        identifier = identifiers[index] if index < len(identifiers) else None
        name = names[index] if index < len(names) else None
        if identifier:
            reference["identifier"] = identifier
        if name:
            reference["display"] = name
        if reference:
            out.append(reference)
    return out


def _person_identifier(item: DicomJson) -> dict[str, Any] | None:
    """Person Identification Code Sequence (0040,1101): the code is the id, its scheme the system."""
    codes = dj.code_items(item, tags.PERSON_IDENTIFICATION_CODE_SEQUENCE)
    if not codes:
        return None
    system = scheme_system(codes[0].scheme)
    return {"system": system, "value": codes[0].value} if system else {"value": codes[0].value}


def _instance(data: DicomJson, issues: Issues, sop_uid: str, sop_class: str) -> dict[str, Any]:
    instance: dict[str, Any] = {
        "uid": sop_uid,
        "sopClass": {"system": RFC3986, "code": f"urn:oid:{sop_class}"},
    }
    number = issues.optional(lambda: dj.integer(data, tags.INSTANCE_NUMBER), None)
    if number is not None and number < 0:
        issues.invalid(tags.INSTANCE_NUMBER, "InstanceNumber is negative")
    elif number is not None:
        instance["number"] = number
    title = issues.optional(lambda: _title(data), None)
    if title:
        instance["title"] = title
    return instance


def _title(data: DicomJson) -> str | None:
    """Document Title | SR concept name | Content Label | Image Type (HL7's order of preference)."""
    title = dj.text(data, tags.DOCUMENT_TITLE)
    if title:
        return title
    names = dj.code_items(data, tags.CONCEPT_NAME_CODE_SEQUENCE)
    if names and names[0].meaning:
        return names[0].meaning
    label = dj.text(data, tags.CONTENT_LABEL, 64)
    if label:
        return label
    image_type = dj.texts(data, tags.IMAGE_TYPE, 64)
    return "\\".join(image_type) if image_type else None


def _is_dose_report(data: DicomJson) -> bool:
    try:
        names = dj.code_items(data, tags.CONCEPT_NAME_CODE_SEQUENCE)
    except dj.InvalidValueError:
        return False
    return any(item.value in DOSE_REPORT_CODES and (item.scheme or "").upper() == "DCM" for item in names)
