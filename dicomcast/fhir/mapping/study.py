"""Merging instances into an ImagingStudy.

Rules (design.md section 2; the same input always gives the same output):
- Study attributes (started, description, referrer, interpreter, procedure codes, reasons,
  location, accession, Study ID, subject): the latest instance in feed order that has a value
  wins; an instance without the value does not clear it (instances of one study normally agree,
  and a missing value is more often an omission than an erasure).
- Series attributes likewise, per series; an instance's elements are replaced as a whole.
  Laterality (0020,0060) is a series attribute. Image-level values (ImageLaterality (0020,0062),
  Body Part Examined) become series values only when every instance agrees: instances
  without the value abstain; a disagreement (also with the value FHIR holds) leaves the element
  out with a warning; a series FHIR holds without it stays without it (its earlier instances may
  have disagreed).
- Counts and study modality are recomputed from the series and instances, never copied from
  (0020,1206)/(0020,1208)/(0008,0061), which are query attributes and go stale with deletes.
  R4 study modality lists the series modalities that are acquisition modalities (DICOM CID 29,
  as R4 defines the element); R5 lists every distinct series modality.
- Elements and identifiers dicomcast does not own (another source's series, an EHR's
  identifiers) are kept as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydicom.sr._cid_dict import cid_concepts
from pydicom.sr._concepts_dict import concepts

from dicomcast.dicom import tags
from dicomcast.dicom.models import ChangeEntry
from dicomcast.fhir.mapping.ids import study_identifier
from dicomcast.fhir.mapping.instance import IMAGE_LEVEL, InstanceFacts
from dicomcast.fhir.mapping.terminology import V2_0203
from dicomcast.fhir.mapping.types import FhirVersion, MappingWarning, Resource, SourceContext, copied


def _acquisition_modalities() -> frozenset[str]:
    """DICOM CID 29 "Acquisition Modality" (pydicom's copy of PS3.16): R4's ImagingStudy.modality."""
    names: list[str] = cid_concepts[29]["DCM"]
    dcm: dict[str, Any] = concepts["DCM"]
    return frozenset(str(code) for name in names for code in dcm[name])


ACQUISITION_MODALITIES = _acquisition_modalities()
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


def _is_our_request(reference: Any, ours: dict[str, Any]) -> bool:
    """An accession request, or one that only names the same requested procedure."""
    if _is_accession_request(reference):
        return True
    return bool(reference == {"type": "ServiceRequest", "display": ours.get("display")})


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
        self.study: Resource = copied(existing) if existing else {"resourceType": "ImagingStudy", "id": resource_id}
        self.series: dict[str, dict[str, Any]] = {}
        self.instances: dict[str, dict[str, dict[str, Any]]] = {}  # series uid -> sop uid -> instance
        self.series_of: dict[str, str] = {}  # sop uid -> series uid
        self.had_instances: set[str] = set()  # series FHIR held with instances before this page
        self.votes: dict[str, dict[str, dict[str, Any]]] = {}  # series uid -> element -> sop uid -> value
        self.last_sequence: dict[str, int] = {}  # series uid -> sequence of its latest entry
        self.series_laterality: set[str] = set()  # series given Laterality (0020,0060) in this page
        self.warnings: list[MappingWarning] = []
        self.emptied: set[str] = set()
        self.fields: dict[str, Any] = {}
        self.accession: dict[str, Any] | None = None
        self.requested_procedure: str | None = None
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
                    self.had_instances.add(uid)

    def add(self, facts: InstanceFacts, subject_reference: str) -> None:
        """Applies a create/update: refreshes study, series and instance elements."""
        self.fields.update(facts.study)
        self.accession = facts.accession or self.accession
        self.requested_procedure = facts.requested_procedure or self.requested_procedure
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
        self.last_sequence[uid] = facts.sequence
        if "laterality" in facts.series:
            self.series_laterality.add(uid)
        votes = self.votes.setdefault(uid, {})
        for element in IMAGE_LEVEL:
            ballot = votes.setdefault(element, {})
            if element in facts.image_level:
                ballot[facts.sop_instance_uid] = facts.image_level[element]
            else:
                ballot.pop(facts.sop_instance_uid, None)

    def remove(self, series_uid: str, sop_uid: str) -> bool:
        """Applies a delete; False when the instance is not in the study (a no-op)."""
        uid = self.series_of.pop(sop_uid, None)
        if uid is None:
            return False
        del self.instances[uid][sop_uid]
        for ballot in self.votes.get(uid, {}).values():
            ballot.pop(sop_uid, None)
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
            self._image_level(uid, series)
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
        uid_identifier = study_identifier(self.study_uid)
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
        """The request as a logical ServiceRequest reference (HL7's guidance, R4 and R5): the
        accession as its identifier, the Requested Procedure Code Sequence's meaning as display."""
        if not (self.accession or self.requested_procedure):
            return
        ours: dict[str, Any] = {"type": "ServiceRequest"}
        if self.accession:
            ours["identifier"] = self.accession
        if self.requested_procedure:
            ours["display"] = self.requested_procedure
        kept = [r for r in study.get("basedOn") or [] if not _is_our_request(r, ours)]
        study["basedOn"] = [ours, *kept]

    def _image_level(self, uid: str, series: dict[str, Any]) -> None:
        """Image-level values of this page's instances become the series value when they agree."""
        for element, ballot in self.votes.get(uid, {}).items():
            if element == "laterality" and uid in self.series_laterality:
                continue  # Laterality (0020,0060) was given: it is the series' own value
            values = list(ballot.values())
            if not values:
                continue
            held = series.get(element)
            distinct = [v for i, v in enumerate(values) if v not in values[:i]]
            if len(distinct) == 1 and (held == distinct[0] or (held is None and uid not in self.had_instances)):
                series[element] = distinct[0]
            elif held is not None or len(distinct) > 1:
                series.pop(element, None)
                what, tag = IMAGE_LEVEL[element]
                message = f"instances of series {uid} disagree on {what}; series {element} left out"
                self.warnings.append(MappingWarning(self.last_sequence.get(uid, 0), tag, message))

    def _modalities(self, series_list: list[dict[str, Any]]) -> list[Any]:
        seen: list[Any] = []
        for series in series_list:
            modality = series.get("modality")
            if modality is None or modality in seen:
                continue
            if self.version is FhirVersion.R5 or _code(modality) in ACQUISITION_MODALITIES:
                seen.append(modality)
        return seen  # series and study modality have the same shape in each release


def _code(concept: dict[str, Any]) -> str | None:
    """The code of an R4 Coding or of an R5 CodeableConcept's first coding."""
    coding = (concept.get("coding") or [{}])[0] if "coding" in concept else concept
    code = coding.get("code")
    return code if isinstance(code, str) else None


DOSE_SR_MODALITY = "SR"


def needs_dose_observations(entries: Sequence[ChangeEntry], study: Resource | None) -> bool:
    """Whether the study's dose Observations must be read before mapping `entries`: one of them is
    an SR (it may be a dose report), or one has no metadata (a delete) in a study with an SR series."""
    for entry in entries:
        element = (entry.metadata or {}).get(tags.MODALITY)
        values = element.get("Value") if isinstance(element, dict) else None
        if isinstance(values, list) and DOSE_SR_MODALITY in values[:1]:
            return True
    if study is None or not any(e.metadata is None for e in entries):
        return False
    return any(_code(series.get("modality") or {}) == DOSE_SR_MODALITY for series in study.get("series", []))
