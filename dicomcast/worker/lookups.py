"""Reads of what FHIR already holds, batched per page: ImagingStudies by study UID, Patients by
identifier, dose Observations by study. One search per kind per page, not one per instance."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from dicomcast.fhir.client import FhirClient
from dicomcast.fhir.mapping.types import PatientKey, Resource, SourceContext

if TYPE_CHECKING:
    from dicomcast.worker.study import StudyState

STUDY_SYSTEM = "urn:dicom:uid"


def study_token(study_uid: str) -> str:
    return f"{STUDY_SYSTEM}|urn:oid:{study_uid}"


def study_uid_of(resource: Resource) -> str | None:
    for identifier in resource.get("identifier", []):
        value = str(identifier.get("value", ""))
        if identifier.get("system") == STUDY_SYSTEM and value.startswith("urn:oid:"):
            return value.removeprefix("urn:oid:")
    return None


def pick_study(candidates: Iterable[Resource], source_ctx: SourceContext, our_root: str) -> Resource | None:
    """The study this source owns (meta.source), else one made by someone else entirely
    (an EHR, or DICOM Cast before the switch-over) — never one of our other partitions'."""
    foreign = None
    for candidate in candidates:
        source = str((candidate.get("meta") or {}).get("source", ""))
        if source == source_ctx.source_uri:
            return candidate
        if not source.startswith(our_root) and foreign is None:
            foreign = candidate
    return foreign


def studies_by_uid(fhir: FhirClient, study_uids: Iterable[str]) -> dict[str, list[Resource]]:
    found: dict[str, list[Resource]] = {}
    for resource in fhir.search_by_identifiers("ImagingStudy", (study_token(u) for u in study_uids)):
        uid = study_uid_of(resource)
        if uid:
            found.setdefault(uid, []).append(resource)
    return found


def patient_keys_of(patient: Resource) -> list[PatientKey]:
    return [PatientKey(i.get("system"), str(i["value"])) for i in patient.get("identifier", []) if i.get("value")]


def patients_by_key(fhir: FhirClient, keys: Iterable[PatientKey]) -> dict[PatientKey, Resource]:
    wanted = set(keys)
    found: dict[PatientKey, Resource] = {}
    for patient in fhir.search_by_identifiers("Patient", (k.search_token() for k in wanted)):
        for key in patient_keys_of(patient):
            if key in wanted and key not in found:
                found[key] = patient
            # A Patient found without a system matches a key without one, as `|value` asks.
    return found


def observations_of(fhir: FhirClient, study: Resource | None) -> list[Resource]:
    if study is None or "id" not in study:
        return []
    return fhir.search("Observation", {"part-of": f"ImagingStudy/{study['id']}"})


def refresh(fhir: FhirClient, study_uid: str, source_ctx: SourceContext, state: StudyState) -> None:
    """Re-read the study and its patients after a 412."""
    root = source_ctx.source_uri.split("/partitions/")[0]
    state.study = pick_study(studies_by_uid(fhir, [study_uid]).get(study_uid, []), source_ctx, root)
    if state.patients:
        state.patients.update(patients_by_key(fhir, list(state.patients)))
