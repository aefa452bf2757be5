"""Patient: the identifiers dicomcast matches on, the issuer it records, and the fields it owns.

The key is (system, PatientID), as DICOM Cast wrote it. The system is `Patient:PatientSystemId`, or
with `Patient:IsIssuerIdUsed` the URI of IssuerOfPatientID (0010,0021): looked up in
`Patient:IssuerSystems`, taken as is when it already is a URI (an OID becomes `urn:oid:`), else
from its Issuer of Patient ID Qualifiers (Universal Entity ID). FHIR systems must be URIs, so an
issuer that is none of these is a warning and the key falls back to PatientSystemId (or no system).

The identifier also records who issued the PatientID (`assigner`, see `read_issuer`), in FHIR
itself, so that two issuers stay two people (`identity.py` decides which Patient an instance
belongs to). Fields owned: our identifiers, the `usual` names, gender and birthDate (filled when
empty, changed only by a correction). An existing Patient (an EHR's, DICOM Cast's) keeps
everything else; it is linked, never duplicated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import quote

from dicomcast.dicom import dicomjson as dj
from dicomcast.dicom import tags
from dicomcast.dicom.dicomjson import DicomJson, InvalidValueError
from dicomcast.fhir.mapping.datatypes import human_names
from dicomcast.fhir.mapping.ids import resource_id
from dicomcast.fhir.mapping.issues import Issues
from dicomcast.fhir.mapping.terminology import GENDER, RFC3986
from dicomcast.fhir.mapping.types import MappingOptions, PatientKey, Resource, copied

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class Unknown(Enum):
    """No issuer recorded on a Patient's identifier (not "no issuer": that is recorded too)."""

    UNKNOWN = "unknown"


UNKNOWN = Unknown.UNKNOWN
DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
NO_ISSUER: dict[str, Any] = {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "unknown"}]}
ISSUER_URN = "urn:dicom:issuer"  # prefix of the systems of issuer-qualified identifiers


@dataclass
class PatientFacts:
    """What one instance says about its patient."""

    key: PatientKey  # DICOM Cast-compatible: PatientSystemId (or the issuer's URI) | PatientID
    issuer: str | None = None  # see read_issuer
    assigner: dict[str, Any] = field(default_factory=dict)
    qualified: PatientKey | None = None  # where this issuer's Patient lives when `key` is another's
    dicom_cast: PatientKey | None = None  # DICOM Cast's raw-issuer key (IsIssuerIdUsed)
    names: list[dict[str, Any]] = field(default_factory=list)
    gender: str | None = None
    birth_date: str | None = None
    other_identifiers: list[dict[str, Any]] = field(default_factory=list)


def as_uri(value: str, options: MappingOptions) -> str | None:
    """An issuer (namespace) as a URI: mapped by configuration, already a URI, or an OID/UUID."""
    mapped = options.issuer_systems.get(value)
    if mapped:
        return mapped
    if _OID.match(value):
        return f"urn:oid:{value}"
    if _UUID.match(value):
        return f"urn:uuid:{value.lower()}"
    if _URI.match(value):
        return value
    return None


def hierarchic_designator(item: DicomJson, options: MappingOptions) -> str | None:
    """The URI of an HL7v2 hierarchic designator item (Local / Universal Entity ID + type)."""
    universal = dj.text(item, tags.UNIVERSAL_ENTITY_ID, 1024)
    if universal:
        kind = (dj.text(item, tags.UNIVERSAL_ENTITY_ID_TYPE, 64) or "").upper()
        if kind == "ISO" and _OID.match(universal):
            return f"urn:oid:{universal}"
        system = as_uri(universal, options)
        if system:
            return system
    local = dj.text(item, tags.LOCAL_NAMESPACE_ENTITY_ID, 1024)
    return as_uri(local, options) if local else None


def _issuer_system(dataset: DicomJson, options: MappingOptions, issues: Issues | None) -> str | None:
    issuer = dj.text(dataset, tags.ISSUER_OF_PATIENT_ID, 1024)
    system = as_uri(issuer, options) if issuer else None
    if system is None:
        for item in dj.sequence(dataset, tags.ISSUER_OF_PATIENT_ID_QUALIFIERS_SEQUENCE):
            system = hierarchic_designator(item, options)
            if system:
                break
    if system is None and issuer and issues is not None:
        issues.note(
            tags.ISSUER_OF_PATIENT_ID,
            "IssuerOfPatientID is not a URI and not in Patient:IssuerSystems; using Patient:PatientSystemId instead",
        )
    return system


def read_key(dataset: DicomJson, options: MappingOptions, issues: Issues | None) -> PatientKey | None:
    """The Patient identifier of an instance; None when PatientID is missing. Raises
    InvalidValueError when PatientID is unreadable.
    """
    value = dj.text(dataset, tags.PATIENT_ID, max_length=64)
    if value is None:
        return None
    system: str | None = None
    if options.is_issuer_id_used:
        try:
            system = _issuer_system(dataset, options, issues)
        except InvalidValueError as error:
            if issues is not None:
                issues.invalid(error.tag, error.reason)
    return PatientKey(system=system or options.patient_system_id or None, value=value)


def patient_key(metadata: DicomJson, options: MappingOptions) -> PatientKey | None:
    """The identifier the worker searches Patient with; None when PatientID is missing or bad."""
    try:
        return read_key(metadata, options, None)
    except InvalidValueError:
        return None


def patient_keys(metadata: DicomJson, options: MappingOptions) -> list[PatientKey]:
    """Every identifier the worker searches Patient with for one instance: the key, the
    issuer-qualified key, and DICOM Cast's raw-issuer key; [] when PatientID is missing or bad."""
    try:
        key = read_key(metadata, options, None)
        if key is None:
            return []
        issuer, _ = read_issuer(metadata)
        keys = [key, qualified_key(metadata, issuer, key.value, options)]
        legacy = dicom_cast_key(metadata, key.value, options)
    except InvalidValueError:
        return []
    if legacy is not None:
        keys.append(legacy)
    return list(dict.fromkeys(keys))


def read_issuer(dataset: DicomJson) -> tuple[str | None, dict[str, Any]]:
    """Who assigned the PatientID, as (name, FHIR `Identifier.assigner`).

    The name is IssuerOfPatientID (0010,0021), else the Universal or Local Entity ID of its
    qualifiers (0010,0024); None when there is none, recorded as a data-absent `assigner` so that
    "no issuer" is remembered too. Raises InvalidValueError for an unreadable issuer: guessing
    "no issuer" could link two people.
    """
    text = dj.text(dataset, tags.ISSUER_OF_PATIENT_ID, 1024)
    universal = local = kind = None
    for item in dj.sequence(dataset, tags.ISSUER_OF_PATIENT_ID_QUALIFIERS_SEQUENCE)[:1]:
        universal = dj.text(item, tags.UNIVERSAL_ENTITY_ID, 1024)
        kind = (dj.text(item, tags.UNIVERSAL_ENTITY_ID_TYPE, 64) or "").upper()
        local = dj.text(item, tags.LOCAL_NAMESPACE_ENTITY_ID, 1024)
    name = text or universal or local
    if name is None:
        return None, copied(NO_ISSUER)
    assigner: dict[str, Any] = {}
    if universal:
        oid = kind == "ISO" and _OID.match(universal)
        assigner["identifier"] = {"system": RFC3986, "value": f"urn:oid:{universal}"} if oid else {"value": universal}
    assigner["display"] = name
    return name, assigner


def qualified_key(dataset: DicomJson, issuer: str | None, value: str, options: MappingOptions) -> PatientKey:
    """The issuer-qualified identifier of a Patient kept apart from another issuer's Patient with
    the same PatientID: the issuer's system (Patient:IssuerSystems, a URI/OID/UUID issuer, or its
    qualifiers), else `urn:dicom:issuer:<percent-encoded issuer>`; `urn:dicom:issuer` without one."""
    if issuer is None:
        return PatientKey(ISSUER_URN, value)
    system = _issuer_system(dataset, options, None) or f"{ISSUER_URN}:{quote(issuer, safe='')}"
    return PatientKey(system, value)


def dicom_cast_key(dataset: DicomJson, value: str, options: MappingOptions) -> PatientKey | None:
    """With IsIssuerIdUsed, DICOM Cast used the raw IssuerOfPatientID as system (not always a URI);
    its Patients are found under that key. Without it, DICOM Cast's key is `read_key`'s."""
    if not options.is_issuer_id_used:
        return None
    return PatientKey(dj.text(dataset, tags.ISSUER_OF_PATIENT_ID, 1024), value)


def identity_keys(patient: Resource) -> list[PatientKey]:
    """The keys a Patient is found by: its identifiers except Other Patient IDs (`secondary`).
    DICOM Cast's empty system counts as none, as its `identifier=|value` search did."""
    keys: list[PatientKey] = []
    for identifier in patient.get("identifier") or []:
        if not isinstance(identifier, dict) or identifier.get("use") == "secondary":
            continue
        value = identifier.get("value")
        if isinstance(value, str) and value:
            keys.append(PatientKey(identifier.get("system") or None, value))
    return keys


def _identity_identifier(patient: Resource, key: PatientKey) -> dict[str, Any] | None:
    for identifier in patient.get("identifier") or []:
        if (
            isinstance(identifier, dict)
            and identifier.get("use") != "secondary"
            and (identifier.get("system") or None) == key.system
            and identifier.get("value") == key.value
        ):
            return identifier
    return None


def recorded_issuer(patient: Resource, key: PatientKey) -> str | Unknown | None:
    """The issuer recorded on the identifier `key` of `patient`; UNKNOWN when none is recorded
    (a Patient made by DICOM Cast or an EHR: adopted by the first study that finds it)."""
    identifier = _identity_identifier(patient, key)
    assigner = identifier.get("assigner") if identifier else None
    if not isinstance(assigner, dict):
        return UNKNOWN
    display = assigner.get("display")
    if isinstance(display, str) and display:
        return display
    if assigner.get("extension") == NO_ISSUER["extension"]:
        return None
    return UNKNOWN


def _identifier(system: str | None, value: str) -> dict[str, Any]:
    return {"system": system, "value": value} if system else {"value": value}


def _other_identifiers(dataset: DicomJson, options: MappingOptions) -> list[dict[str, Any]]:
    """Other Patient IDs (0010,1002) with a known issuer system, marked `secondary`: they never
    identify a Patient (identity_keys skips them). One without an issuer system is left out: an
    unscoped `{value}` would match another person's PatientID in an `identifier=|value` search."""
    out: list[dict[str, Any]] = []
    for item in dj.sequence(dataset, tags.OTHER_PATIENT_IDS_SEQUENCE):
        value = dj.text(item, tags.PATIENT_ID, 64)
        if value is None:
            continue
        issuer = dj.text(item, tags.ISSUER_OF_PATIENT_ID, 1024)
        system = as_uri(issuer, options) if issuer else None
        if system is None:
            for qualifier in dj.sequence(item, tags.ISSUER_OF_PATIENT_ID_QUALIFIERS_SEQUENCE):
                system = hierarchic_designator(qualifier, options) or system
        if system:
            out.append({"use": "secondary", "system": system, "value": value})
    return out


def read_facts(dataset: DicomJson, key: PatientKey, options: MappingOptions, issues: Issues) -> PatientFacts:
    """Issuer, name, sex, birth date and other ids; invalid optional ones are left out with a
    warning. Raises InvalidValueError for an unreadable issuer (the entry fails)."""
    issuer, assigner = read_issuer(dataset)
    facts = PatientFacts(
        key=key,
        issuer=issuer,
        assigner=assigner,
        qualified=qualified_key(dataset, issuer, key.value, options),
        dicom_cast=dicom_cast_key(dataset, key.value, options),
    )
    name = issues.optional(lambda: dj.person_name(dataset, tags.PATIENT_NAME), None)
    if name is not None:
        facts.names = human_names(name)
    sex = issues.optional(lambda: dj.text(dataset, tags.PATIENT_SEX, 64), None)
    if sex is not None:
        facts.gender = GENDER.get(sex.upper())
        if facts.gender is None:
            issues.invalid(tags.PATIENT_SEX, "PatientSex is not M, F or O")
    facts.birth_date = issues.optional(lambda: dj.date(dataset, tags.PATIENT_BIRTH_DATE), None)
    facts.other_identifiers = issues.optional_list(lambda: _other_identifiers(dataset, options))
    return facts


def _same_identifier(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return (a.get("system") or None) == (b.get("system") or None) and a.get("value") == b.get("value")


def _stamp(patient: Resource, key: PatientKey, assigner: dict[str, Any]) -> None:
    """The identifier `key` with the issuer recorded (kept when already recorded); DICOM Cast's
    empty system (no valid FHIR) dropped."""
    identifier = _identity_identifier(patient, key)
    if identifier is None:
        identifier = _identifier(key.system, key.value)
        patient.setdefault("identifier", []).append(identifier)
    if identifier.get("system") == "":
        del identifier["system"]
    identifier.setdefault("assigner", copied(assigner))


def merge_patient(
    existing: Resource | None, facts: PatientFacts, keys: Sequence[PatientKey], correct: bool
) -> tuple[Resource, list[str]]:
    """The Patient after applying `facts` under `keys` (the first names a new Patient), and the
    demographics (`gender`, `birthDate`) it holds otherwise and kept: empty ones are filled, a
    different value is only written by a correction (`correct`: an Azure `update` action)."""
    if existing is not None:
        patient = copied(existing)
    else:
        patient = {"resourceType": "Patient", "id": resource_id("Patient", keys[0].system or "", keys[0].value)}
    for key in keys:
        _stamp(patient, key, facts.assigner)
    identifiers: list[dict[str, Any]] = patient["identifier"]
    for identifier in facts.other_identifiers:
        if not any(_same_identifier(identifier, known) for known in identifiers):
            identifiers.append(identifier)
    if facts.names:
        others = [n for n in patient.get("name", []) if n.get("use") != "usual"]
        patient["name"] = facts.names + others
    kept: list[str] = []
    for element, value in (("gender", facts.gender), ("birthDate", facts.birth_date)):
        held = patient.get(element)
        if not value or held == value:
            continue
        if held and not correct:
            kept.append(element)
        else:
            patient[element] = value
    return patient, kept
