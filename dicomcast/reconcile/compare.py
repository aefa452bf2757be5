"""Compare one study as the DICOM server lists it (QIDO-RS) with the ImagingStudies FHIR holds for it.

Pure: no I/O. The result names each difference by kind, with UIDs and counts only (never PHI):

    missing-study      FHIR has no ImagingStudy for a study the DICOM server holds
    gone-study         FHIR has one for a study the DICOM server no longer holds
    missing-series / extra-series / missing-instances / extra-instances
    counts             numberOfSeries / numberOfInstances (study or series) wrong or absent
    modality           series or study modality absent or not the DICOM Modality
    instance           an instance's sopClass or number differs
    legacy             DICOM Cast's content (its meta.source), brought up to dicomcast's mapping
    endpoint / status  this source's Endpoint not referenced; status not `available`
    duplicates         several ImagingStudies of this source for one study UID
    content            the mapping, run on the study's metadata, would write something else
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from dicomcast.dicom.inventory import DicomInstance, StudyRef
from dicomcast.fhir.mapping import legacy
from dicomcast.fhir.mapping.ids import resource_id
from dicomcast.fhir.mapping.types import Resource, SourceContext


@dataclass(frozen=True)
class Difference:
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


@dataclass
class StudyCheck:
    """One study's comparison, and (once read) its metadata and what the mapping would write."""

    ref: StudyRef
    source_ctx: SourceContext
    kept: Resource | None  # the ImagingStudy that stays (ours, else DICOM Cast's, else another's)
    extras: list[Resource]  # further ImagingStudies of this source for the same UID: to merge away
    dicom: list[DicomInstance]
    differences: list[Difference] = field(default_factory=list)
    metadata: list[dict[str, Any]] | None = None

    @property
    def gone(self) -> bool:
        return not self.dicom

    @property
    def needs_rewrite(self) -> bool:
        """Differences the mapping must write (duplicates alone only need merging)."""
        return any(d.kind != "duplicates" for d in self.differences)


def study_resource_id(ref: StudyRef) -> str:
    return resource_id("ImagingStudy", ref.partition or "", ref.study_uid)


def owned_by_source(study: Resource, source_ctx: SourceContext) -> bool:
    source = (study.get("meta") or {}).get("source")
    return source == source_ctx.source_uri or legacy.is_dicom_cast_study(study, source_ctx)


def choose(
    ref: StudyRef, candidates: list[Resource], source_ctx: SourceContext, our_root: str
) -> tuple[Resource | None, list[Resource]]:
    """(the study that stays, the duplicates to merge into it). Preference: ours at our own id, ours,
    DICOM Cast's for this source; an ImagingStudy made by someone else (an EHR) is kept as the sync
    keeps it, and another partition's is never touched."""
    owned = [c for c in candidates if owned_by_source(c, source_ctx)]
    if not owned:
        foreign = [c for c in candidates if not str((c.get("meta") or {}).get("source", "")).startswith(our_root)]
        return (foreign[0] if foreign else None), []
    wanted_id = study_resource_id(ref)

    def rank(study: Resource) -> tuple[bool, bool, str]:
        ours = (study.get("meta") or {}).get("source") == source_ctx.source_uri
        return (study.get("id") != wanted_id, not ours, str(study.get("id")))

    ordered = sorted(owned, key=rank)
    return ordered[0], ordered[1:]


def compare(
    ref: StudyRef, dicom: list[DicomInstance], candidates: list[Resource], source_ctx: SourceContext, our_root: str
) -> StudyCheck:
    kept, extras = choose(ref, candidates, source_ctx, our_root)
    check = StudyCheck(ref, source_ctx, kept, extras, dicom)
    found = check.differences
    if extras:
        found.append(Difference("duplicates", f"{len(extras) + 1} ImagingStudies of this source"))
    if kept is None:
        if dicom:
            series = {i.series_uid for i in dicom}
            found.append(Difference("missing-study", f"{len(series)} series, {len(dicom)} instances"))
        return check
    if not dicom:
        if owned_by_source(kept, source_ctx):
            found.append(Difference("gone-study", f"{_instance_count(kept)} instances in FHIR"))
        return check
    found += _structure(kept, dicom)
    found += _study_level(kept, dicom, source_ctx)
    return check


def _fhir_instances(study: Resource) -> dict[str, tuple[str, dict[str, Any]]]:
    """sop uid -> (series uid, instance element)."""
    out = {}
    for series in _list(study.get("series")):
        for instance in _list(series.get("instance")):
            if isinstance(instance.get("uid"), str):
                out[instance["uid"]] = (str(series.get("uid")), instance)
    return out


def _instance_count(study: Resource) -> int:
    return len(_fhir_instances(study))


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _structure(kept: Resource, dicom: list[DicomInstance]) -> list[Difference]:
    found = []
    fhir_series = {str(s.get("uid")): s for s in _list(kept.get("series"))}
    dicom_series: dict[str, list[DicomInstance]] = defaultdict(list)
    for instance in dicom:
        dicom_series[instance.series_uid].append(instance)
    missing = sorted(set(dicom_series) - set(fhir_series))
    extra = sorted(set(fhir_series) - set(dicom_series))
    if missing:
        found.append(Difference("missing-series", f"{len(missing)} series: {', '.join(missing[:5])}"))
    if extra:
        found.append(Difference("extra-series", f"{len(extra)} series gone from DICOM: {', '.join(extra[:5])}"))
    fhir = _fhir_instances(kept)
    wanted = {i.sop_instance_uid: i for i in dicom}
    lacking = [uid for uid in wanted if uid not in fhir]
    surplus = [uid for uid in fhir if uid not in wanted]
    if lacking:
        found.append(Difference("missing-instances", f"{len(lacking)} of {len(wanted)} instances not in FHIR"))
    if surplus:
        found.append(Difference("extra-instances", f"{len(surplus)} instances in FHIR gone from DICOM"))
    found += _counts(kept, fhir_series, dicom_series)
    found += _modalities(kept, fhir_series, dicom_series)
    found += _instances(fhir, wanted)
    return found


def _counts(
    kept: Resource, fhir_series: dict[str, dict[str, Any]], dicom_series: dict[str, list[DicomInstance]]
) -> list[Difference]:
    wrong = []
    total = sum(len(v) for v in dicom_series.values())
    if kept.get("numberOfSeries") != len(dicom_series):
        wrong.append(f"numberOfSeries {kept.get('numberOfSeries', 'absent')} (DICOM {len(dicom_series)})")
    if kept.get("numberOfInstances") != total:
        wrong.append(f"numberOfInstances {kept.get('numberOfInstances', 'absent')} (DICOM {total})")
    bad_series = [
        uid
        for uid, series in fhir_series.items()
        if uid in dicom_series and series.get("numberOfInstances") != len(dicom_series[uid])
    ]
    if bad_series:
        wrong.append(f"series numberOfInstances wrong in {len(bad_series)} series")
    return [Difference("counts", "; ".join(wrong))] if wrong else []


def modality_code(value: Any) -> str | None:
    """The code of an R4 Coding or an R5 CodeableConcept."""
    if not isinstance(value, dict):
        return None
    if "coding" in value:
        value = (_list(value.get("coding")) or [{}])[0]
    code = value.get("code")
    return str(code) if code else None


def _modalities(
    kept: Resource, fhir_series: dict[str, dict[str, Any]], dicom_series: dict[str, list[DicomInstance]]
) -> list[Difference]:
    wrong = []
    absent = [uid for uid, s in fhir_series.items() if uid in dicom_series and modality_code(s.get("modality")) is None]
    differing = [
        uid
        for uid, s in fhir_series.items()
        if uid in dicom_series
        and modality_code(s.get("modality")) not in (None, dicom_series[uid][0].modality)
        and dicom_series[uid][0].modality is not None
    ]
    if absent:
        wrong.append(f"series modality absent in {len(absent)} series")
    if differing:
        wrong.append(f"series modality differs in {len(differing)} series")
    study_codes = {c for c in (modality_code(m) for m in _list(kept.get("modality"))) if c}
    dicom_codes = {c for c in (s[0].modality for s in dicom_series.values()) if c}
    if not study_codes:
        wrong.append("study modality absent")
    elif study_codes != dicom_codes and dicom_codes:
        wrong.append(f"study modality {sorted(study_codes)} (DICOM {sorted(dicom_codes)})")
    return [Difference("modality", "; ".join(wrong))] if wrong else []


def _instances(fhir: dict[str, tuple[str, dict[str, Any]]], wanted: dict[str, DicomInstance]) -> list[Difference]:
    moved = differing = 0
    for uid, instance in wanted.items():
        if uid not in fhir:
            continue
        series_uid, element = fhir[uid]
        sop_class = str((element.get("sopClass") or {}).get("code", "")).removeprefix("urn:oid:")
        if series_uid != instance.series_uid:
            moved += 1
        elif (instance.sop_class and sop_class != instance.sop_class) or (
            instance.number is not None and element.get("number") != instance.number
        ):
            differing += 1
    detail = []
    if moved:
        detail.append(f"{moved} instances in another series")
    if differing:
        detail.append(f"sopClass or number differs in {differing} instances")
    return [Difference("instance", "; ".join(detail))] if detail else []


def _study_level(kept: Resource, dicom: list[DicomInstance], source_ctx: SourceContext) -> list[Difference]:
    found = []
    if legacy.is_dicom_cast_study(kept, source_ctx):
        found.append(Difference("legacy", "written by DICOM Cast"))
    references = {str(e.get("reference")) for e in _list(kept.get("endpoint"))}
    if source_ctx.endpoint_reference not in references:
        found.append(Difference("endpoint", f"{source_ctx.endpoint_reference} not referenced"))
    if kept.get("status") != "available":
        found.append(Difference("status", f"status {kept.get('status', 'absent')}"))
    return found
