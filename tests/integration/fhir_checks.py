"""What FHIR holds after a switch-over, read back: studies by UID, and resources said twice."""

from __future__ import annotations

from collections import Counter
from typing import Any


def study_uid_of(study: dict[str, Any]) -> str:
    return str(next(i["value"] for i in study["identifier"] if i.get("system") == "urn:dicom:uid")).removeprefix(
        "urn:oid:"
    )


def by_uid(snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {study_uid_of(s): s for s in snap["ImagingStudy"].values()}


def duplicates(snap: dict[str, Any]) -> dict[str, int]:
    """Resources that say the same thing twice: studies per UID, Patients per identifier,
    Endpoints per address, dose Observations (see _dose_duplicates)."""
    keys: Counter[tuple[str, str]] = Counter()
    for study in snap["ImagingStudy"].values():
        keys["ImagingStudy", study_uid_of(study)] += 1
    for patient in snap["Patient"].values():
        for identifier in patient.get("identifier", []):
            keys["Patient", str(identifier.get("value"))] += 1
    for endpoint in snap["Endpoint"].values():
        keys["Endpoint", str(endpoint["address"]).rstrip("/").removesuffix("/v1")] += 1
    counts = {f"{kind} {key}": n for (kind, key), n in keys.items() if n > 1}
    return counts | _dose_duplicates(snap)


SUMMARY = ("http://loinc.org", "73569-6")


def _plane(observation: dict[str, Any]) -> str:
    """A biplane report's per-plane Observation: its Acquisition Plane (113764) value."""
    for component in observation.get("component", []):
        if any(c.get("code") == "113764" for c in component.get("code", {}).get("coding", [])):
            return str(component.get("valueCodeableConcept"))
    return ""


def _dose_duplicates(snap: dict[str, Any]) -> dict[str, int]:
    """Per study: more dose summaries than SR instances, one of dicomcast's written twice, or
    DICOM Cast's Observations (the study's identifier) left beside dicomcast's (partOf the study)."""
    found: dict[str, int] = {}
    for study in snap["ImagingStudy"].values():
        uid, reference = study_uid_of(study), f"ImagingStudy/{study['id']}"
        srs = sum(len(s.get("instance", [])) for s in study.get("series", []) if s["modality"].get("code") == "SR")
        mine = [
            o
            for o in snap["Observation"].values()
            if reference in [p.get("reference") for p in o.get("partOf", []) if isinstance(p, dict)]
        ]
        legacy = [
            o
            for o in snap["Observation"].values()
            if {"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"} in o.get("identifier", [])
        ]
        both = {o["id"]: o for o in mine + legacy}.values()
        summaries = [o for o in both if any((c.get("system"), c.get("code")) == SUMMARY for c in o["code"]["coding"])]
        if len(summaries) > srs:
            found[f"Observation summaries of {uid}"] = len(summaries)
        ours = [o for o in mine if o not in legacy]
        keys = Counter(str((o["code"], sorted(map(str, o.get("identifier", []))), _plane(o))) for o in ours)
        if any(n > 1 for n in keys.values()):  # named by the SR's or the event's UID (and the plane)
            found[f"Observation written twice in {uid}"] = max(keys.values())
        if ours and [o for o in legacy if o not in mine]:
            found[f"Observation DICOM Cast's beside dicomcast's in {uid}"] = len(legacy)
    return found
