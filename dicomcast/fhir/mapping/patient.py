"""Patient: the identifier dicomcast matches on, and the fields it owns.

The key is (system, PatientID). The system is `Patient:PatientSystemId`, or with
`Patient:IsIssuerIdUsed` the URI of IssuerOfPatientID (0010,0021): looked up in
`Patient:IssuerSystems`, taken as is when it already is a URI (an OID becomes `urn:oid:`), else
from its Issuer of Patient ID Qualifiers (Universal Entity ID). FHIR systems must be URIs, so an
issuer that is none of these is a warning and the key falls back to PatientSystemId (or no system).

Fields owned: our identifiers, the `usual` names, gender, birthDate. An existing Patient (say
made by an EHR) keeps everything else; it is linked, never duplicated.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dicomcast.dicom import dicomjson as dj
from dicomcast.dicom import tags
from dicomcast.dicom.dicomjson import DicomJson, InvalidValueError
from dicomcast.fhir.mapping.datatypes import human_names
from dicomcast.fhir.mapping.ids import resource_id
from dicomcast.fhir.mapping.issues import Issues
from dicomcast.fhir.mapping.terminology import GENDER
from dicomcast.fhir.mapping.types import MappingOptions, PatientKey, Resource

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


@dataclass
class PatientFacts:
    """What one instance says about its patient."""

    key: PatientKey
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


def _identifier(system: str | None, value: str) -> dict[str, Any]:
    return {"system": system, "value": value} if system else {"value": value}


def _other_identifiers(dataset: DicomJson, options: MappingOptions) -> list[dict[str, Any]]:
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
        out.append(_identifier(system, value))
    return out


def read_facts(dataset: DicomJson, key: PatientKey, options: MappingOptions, issues: Issues) -> PatientFacts:
    """Name, sex, birth date and other ids; invalid ones are left out with a warning."""
    facts = PatientFacts(key=key)
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
    return a.get("system") == b.get("system") and a.get("value") == b.get("value")


def merge_patient(existing: Resource | None, facts: PatientFacts) -> Resource:
    """The Patient after applying `facts`: only the fields we own change."""
    if existing is not None:
        patient = copy.deepcopy(existing)
    else:
        patient = {
            "resourceType": "Patient",
            "id": resource_id("Patient", facts.key.system or "", facts.key.value),
        }
    identifiers: list[dict[str, Any]] = patient.setdefault("identifier", [])
    for identifier in [_identifier(facts.key.system, facts.key.value), *facts.other_identifiers]:
        if not any(_same_identifier(identifier, known) for known in identifiers):
            identifiers.append(identifier)
    if facts.names:
        others = [n for n in patient.get("name", []) if n.get("use") != "usual"]
        patient["name"] = facts.names + others
    if facts.gender:
        patient["gender"] = facts.gender
    if facts.birth_date:
        patient["birthDate"] = facts.birth_date
    return patient
