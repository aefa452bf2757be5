"""Merging instances into an ImagingStudy.

Rules (design.md section 2; the same input always gives the same output):
- Study attributes (started, description, referrer, interpreter, procedure codes, reasons,
  location, accession, Study ID, subject): the latest instance in feed order that has a value
  wins; an instance without the value does not clear it (instances of one study normally agree,
  and a missing value is more often an omission than an erasure).
- Series attributes likewise, per series; an instance's elements are replaced as a whole.
- Counts and study modality are recomputed from the series and instances, never copied from
  (0020,1206)/(0020,1208)/(0008,0061), which are query attributes and go stale with deletes.
- Elements and identifiers dicomcast does not own (another source's series, an EHR's
  identifiers) are kept as they are.
"""

from __future__ import annotations

import copy
from typing import Any

from dicomcast.fhir.mapping.instance import InstanceFacts
from dicomcast.fhir.mapping.terminology import DICOM_UID, V2_0203
from dicomcast.fhir.mapping.types import FhirVersion, Resource, SourceContext

_STUDY_ID_TYPE = {"text": "DICOM Study ID"}


def _is_accession(identifier: Any) -> bool:
    if not isinstance(identifier, dict):
        return False
    codings = (identifier.get("type") or {}).get("coding") or []
    return any(c.get("system") == V2_0203 and c.get("code") == "ACSN" for c in codings if isinstance(c, dict))


def _is_study_id(identifier: Any) -> bool:
    return isinstance(identifier, dict) and identifier.get("type") == _STUDY_ID_TYPE


def _is_accession_request(reference: Any) -> bool:
    return (
        isinstance(reference, dict)
        and reference.get("type") == "ServiceRequest"
        and _is_accession(reference.get("identifier"))
    )


def without_meta(resource: Resource | None) -> Resource | None:
    if resource is None:
        return None
    return {k: v for k, v in resource.items() if k != "meta"}


class StudyMerger:
    """Holds one ImagingStudy while a page's entries are applied, indexed by UID."""

    def __init__(
        self, study_uid: str, resource_id: str, existing: Resource | None, context: SourceContext, version: FhirVersion
    ) -> None:
        self.study_uid = study_uid
        self.existing = existing
        self.context = context
        self.version = version
        self.study: Resource = (
            copy.deepcopy(existing) if existing else {"resourceType": "ImagingStudy", "id": resource_id}
        )
        self.series: dict[str, dict[str, Any]] = {}
        self.instances: dict[str, dict[str, dict[str, Any]]] = {}  # series uid -> sop uid -> instance
        self.series_of: dict[str, str] = {}  # sop uid -> series uid
        self.emptied: set[str] = set()
        self.fields: dict[str, Any] = {}
        self.accession: dict[str, Any] | None = None
        self.study_id: str | None = None
        self.subject: str | None = None
        self.removed = 0
        for series in self.study.get("series") or []:
            uid = series.get("uid")
            if isinstance(uid, str):
                self.series[uid] = series
                self.instances[uid] = {}
                for instance in series.get("instance") or []:
                    self.instances[uid][instance.get("uid")] = instance
                    self.series_of[instance.get("uid")] = uid

    def add(self, facts: InstanceFacts, subject_reference: str) -> None:
        """Applies a create/update: refreshes study, series and instance elements."""
        self.fields.update(facts.study)
        self.accession = facts.accession or self.accession
        self.study_id = facts.study_id or self.study_id
        self.subject = subject_reference
        uid = facts.series_uid
        previous = self.series_of.get(facts.sop_instance_uid)
        if previous is not None and previous != uid:
            self.remove(previous, facts.sop_instance_uid)
        series = self.series.get(uid)
        if series is None:
            series = self.series[uid] = {}
            self.instances[uid] = {}
        series.update(facts.series)
        self.instances[uid][facts.sop_instance_uid] = facts.instance
        self.series_of[facts.sop_instance_uid] = uid
        self.emptied.discard(uid)

    def remove(self, series_uid: str, sop_uid: str) -> bool:
        """Applies a delete; False when the instance is not in the study (a no-op)."""
        uid = self.series_of.pop(sop_uid, None)
        if uid is None:
            return False
        del self.instances[uid][sop_uid]
        if not self.instances[uid]:
            self.emptied.add(uid)
        self.removed += 1
        return True

    @property
    def series_count(self) -> int:
        return sum(1 for uid in self.series if uid not in self.emptied)

    def render(self) -> Resource:
        """The ImagingStudy after every applied entry."""
        study = self.study
        series_list = []
        for uid, series in self.series.items():
            if uid in self.emptied:
                continue
            instances = list(self.instances[uid].values())
            series["numberOfInstances"] = len(instances)
            if instances:
                series["instance"] = instances
            else:
                series.pop("instance", None)
            series_list.append(series)
        self._study_elements(study, series_list)
        return study

    def _study_elements(self, study: Resource, series_list: list[dict[str, Any]]) -> None:
        meta = study.setdefault("meta", {})
        meta.setdefault("source", self.context.source_uri)
        study["identifier"] = self._identifiers(study.get("identifier") or [])
        study["status"] = "available"
        if self.version is FhirVersion.R5 or self.accession:
            self._based_on(study)
        study.update(self.fields)
        modalities = self._modalities(series_list)
        if modalities:
            study["modality"] = modalities
        else:
            study.pop("modality", None)
        if self.subject:
            study["subject"] = {"reference": self.subject}
        endpoints = study.setdefault("endpoint", [])
        if not any(e.get("reference") == self.context.endpoint_reference for e in endpoints):
            endpoints.append({"reference": self.context.endpoint_reference})
        study["numberOfSeries"] = len(series_list)
        study["numberOfInstances"] = sum(s["numberOfInstances"] for s in series_list)
        if series_list:
            study["series"] = series_list
        else:
            study.pop("series", None)

    def _identifiers(self, existing: list[Any]) -> list[Any]:
        uid_identifier = {"system": DICOM_UID, "value": f"urn:oid:{self.study_uid}"}
        kept = [i for i in existing if i != uid_identifier]
        ours: list[Any] = [uid_identifier]
        if self.accession and self.version is FhirVersion.R4:
            kept = [i for i in kept if not _is_accession(i)]
            ours.append(self.accession)
        if self.study_id:
            kept = [i for i in kept if not _is_study_id(i)]
            ours.append({"use": "secondary", "type": _STUDY_ID_TYPE, "value": self.study_id})
        return ours + kept

    def _based_on(self, study: Resource) -> None:
        """The accession as a logical ServiceRequest reference (HL7's guidance, R4 and R5)."""
        if not self.accession:
            return
        kept = [r for r in study.get("basedOn") or [] if not _is_accession_request(r)]
        study["basedOn"] = [{"type": "ServiceRequest", "identifier": self.accession}, *kept]

    def _modalities(self, series_list: list[dict[str, Any]]) -> list[Any]:
        seen: list[Any] = []
        for series in series_list:
            modality = series.get("modality")
            if modality is not None and modality not in seen:
                seen.append(modality)
        return seen  # series and study modality have the same shape in each release
