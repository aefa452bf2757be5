"""Reads of what FHIR already holds, batched per page: ImagingStudies by study UID, Patients by
identifier, dose Observations by study. One search per kind per page, not one per instance."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from dicomcast.fhir.client import FhirClient
from dicomcast.fhir.mapping import legacy
from dicomcast.fhir.mapping.ids import resource_id, study_token, study_uid_of
from dicomcast.fhir.mapping.patient import identity_keys
from dicomcast.fhir.mapping.terminology import ENDPOINT_CONNECTION_TYPE
from dicomcast.fhir.mapping.types import PatientKey, Resource, SourceContext

if TYPE_CHECKING:
    from dicomcast.worker.study_write import StudyState


def pick_study(candidates: Iterable[Resource], source_ctx: SourceContext, our_root: str) -> Resource | None:
    """The study this source owns (meta.source), else the one DICOM Cast made from this DICOM
    service before the switch-over (adopted), else one made by someone else entirely (an EHR) —
    never one of our other partitions'."""
    dicom_cast = foreign = None
    for candidate in candidates:
        source = str((candidate.get("meta") or {}).get("source", ""))
        if source == source_ctx.source_uri:
            return candidate
        if dicom_cast is None and legacy.is_dicom_cast_study(candidate, source_ctx):
            dicom_cast = candidate
        elif not source.startswith(our_root) and foreign is None:
            foreign = candidate
    return dicom_cast or foreign


def studies_by_uid(fhir: FhirClient, study_uids: Iterable[str]) -> dict[str, list[Resource]]:
    found: dict[str, list[Resource]] = {}
    for resource in fhir.search_by_identifiers("ImagingStudy", (study_token(u) for u in study_uids)):
        uid = study_uid_of(resource)
        if uid:
            found.setdefault(uid, []).append(resource)
    return found


def patient_keys_of(patient: Resource) -> list[PatientKey]:
    """The keys a Patient is found by (Other Patient IDs excluded: they never match)."""
    return identity_keys(patient)


def patients_by_key(fhir: FhirClient, keys: Iterable[PatientKey]) -> dict[PatientKey, Resource]:
    """Patients by key. The server's token search also matches Other Patient IDs and ignores the
    issuer: the hits are filtered here, and `fhir/mapping/identity.py` checks the issuer. When
    several Patients hold one key (duplicates made elsewhere), the choice is deterministic: the
    one at dicomcast's own id for the key, else the smallest id, so a replay links the same one."""
    wanted = set(keys)
    found: dict[PatientKey, Resource] = {}
    for patient in fhir.search_by_identifiers("Patient", (k.search_token() for k in wanted)):
        for key in patient_keys_of(patient):
            # A Patient found without a system (or DICOM Cast's "") matches a key without one.
            if key in wanted and (key not in found or _preferred(patient, found[key], key)):
                found[key] = patient
    return found


def _preferred(candidate: Resource, held: Resource, key: PatientKey) -> bool:
    ours = resource_id("Patient", key.system or "", key.value)
    if held.get("id") == ours:
        return False
    return candidate.get("id") == ours or str(candidate.get("id", "")) < str(held.get("id", ""))


def observations_of(fhir: FhirClient, study: Resource | None, study_uid: str) -> list[Resource]:
    """The study's dose Observations: dicomcast's (partOf the study) and DICOM Cast's, which carry
    the study's identifier instead (its irradiation events have no partOf)."""
    if study is None or "id" not in study:
        return []
    found = {o["id"]: o for o in fhir.search("Observation", {"part-of": f"ImagingStudy/{study['id']}"}) if "id" in o}
    for observation in fhir.search("Observation", {"identifier": study_token(study_uid)}):
        if "id" in observation and legacy.is_dicom_cast_dose(observation, study_uid):
            found.setdefault(observation["id"], observation)
    return list(found.values())


def wado_endpoint(fhir: FhirClient, names: Iterable[str]) -> Resource | None:
    """An Endpoint already in FHIR under one of `names` (in order of preference) with the
    `dicom-wado-rs` connection type: DICOM Cast's has a server-assigned id. One search for all the
    names (FHIR's comma is OR), unless a name holds a character FHIR search would read as syntax."""
    names = list(names)
    plain = not any(set(name) & _SEARCH_SYNTAX for name in names)
    for group in [names] if plain else [[name] for name in names]:
        found = fhir.search(
            "Endpoint", {"name": ",".join(group), "connection-type": f"{ENDPOINT_CONNECTION_TYPE}|dicom-wado-rs"}
        )
        for name in group:  # `name` matches by prefix: only an exact name counts, in order of preference
            exact = [e for e in found if legacy.is_wado_endpoint(e, [name]) and "id" in e]
            if exact:
                return min(exact, key=lambda e: str(e["id"]))
    return None


_SEARCH_SYNTAX = frozenset(",$|\\")


def refresh(fhir: FhirClient, study_uid: str, source_ctx: SourceContext, state: StudyState) -> None:
    """Re-read the study and its patients after a 412."""
    found = studies_by_uid(fhir, [study_uid]).get(study_uid, [])
    state.study = pick_study(found, source_ctx, source_ctx.service_root)
    if state.patients:
        state.patients.update(patients_by_key(fhir, list(state.patients)))
