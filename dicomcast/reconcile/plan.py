"""What the mapping would write for a study that differs (or for every study, with --full).

The study's WADO-RS metadata becomes one `create` ChangeEntry per instance, and every instance FHIR
lists that the metadata lacks one `delete` entry; `map_study` (pure) then says what it would write
against what FHIR holds. Nothing is written here: a dry run reports it, a repair hands the same
entries to the normal write path (worker/page.py), which maps again against a fresh read.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from dicomcast.dicom import dicomjson, tags
from dicomcast.dicom.inventory import StudyRef, creation, deletion, readable, series_uid_of, sop_instance_uid_of
from dicomcast.dicom.models import ChangeEntry, DicomJson
from dicomcast.fhir.mapping import endpoint_resource, legacy, map_study, patient_key
from dicomcast.fhir.mapping.study import needs_dose_observations, without_meta
from dicomcast.fhir.mapping.types import PatientKey, Resource, SourceContext, StudyInput, StudyOutput
from dicomcast.reconcile.compare import Difference, StudyCheck
from dicomcast.worker import lookups
from dicomcast.worker.context import SyncContext
from dicomcast.worker.endpoints import source_context


def study_context(ctx: SyncContext, partition: str | None, *, dry_run: bool) -> SourceContext:
    """The source's SourceContext; a dry run finds the Endpoint without writing it."""
    if not dry_run:
        return source_context(ctx, partition)
    address = ctx.source.endpoint_address(partition)
    wanted = endpoint_resource(address, f"{legacy.ENDPOINT_NAME} {address}", ctx.options)
    current = _retry(ctx, lambda: ctx.fhir.read("Endpoint", str(wanted["id"])))
    if current is None:
        names = (str(wanted["name"]), *legacy.dicom_cast_endpoint_names(address))
        current = _retry(ctx, lambda: lookups.wado_endpoint(ctx.fhir, names))
    endpoint_id = current["id"] if current is not None else wanted["id"]
    return SourceContext(source_uri=address, endpoint_reference=f"Endpoint/{endpoint_id}")


def entries_of(check: StudyCheck) -> list[ChangeEntry]:
    """create entries from the metadata (series then instance number order), delete entries for
    what FHIR lists and the DICOM server no longer has."""
    ref = check.ref
    metadata = sorted(check.metadata or [], key=_order)
    entries = [creation(ref, item) for item in metadata]
    present = {e.sop_instance_uid for e in entries}
    for series in (check.kept or {}).get("series") or []:
        for instance in series.get("instance") or []:
            uid = instance.get("uid")
            if isinstance(uid, str) and uid not in present:
                entries.append(deletion(ref, str(series.get("uid")), uid))
    return [e for e in entries if e.series_uid and e.sop_instance_uid]


def _order(item: DicomJson) -> tuple[int, str, int, str]:
    def number(tag: str) -> int:
        value = readable(lambda: dicomjson.integer(item, tag))
        return value if value is not None and value >= 0 else 0

    return (
        number(tags.SERIES_NUMBER),
        series_uid_of(item) or "",
        number(tags.INSTANCE_NUMBER),
        sop_instance_uid_of(item) or "",
    )


def evaluate(ctx: SyncContext, checks: Sequence[StudyCheck]) -> dict[StudyRef, StudyOutput]:
    """Run the mapping for each check that has metadata; add a `content` difference where it would
    write although the comparison found nothing else."""
    keys: set[PatientKey] = set()
    for check in checks:
        for item in check.metadata or []:
            key = patient_key(item, ctx.options)
            if key is not None:
                keys.add(key)
    patients = _retry(ctx, lambda: lookups.patients_by_key(ctx.fhir, keys)) if keys else {}
    outputs = {}
    for check in checks:
        if check.metadata is None:
            continue
        entries = entries_of(check)
        observations: list[Resource] = []
        if check.kept is not None and needs_dose_observations(entries, check.kept):
            read = partial(lookups.observations_of, ctx.fhir, check.kept, check.ref.study_uid)
            observations = _retry(ctx, read)
        study = StudyInput(check.ref.study_uid, check.ref.partition, entries, check.kept, patients, observations)
        output = map_study(study, check.source_ctx, ctx.options)
        outputs[check.ref] = output
        written = describe_writes(output, check.kept)
        if written and not check.needs_rewrite:
            check.differences.append(Difference("content", written))
    return outputs


def describe_writes(output: StudyOutput, existing: Resource | None) -> str:
    """What an output would write, by element names and counts (never values)."""
    parts = []
    if output.imaging_study is not None:
        parts.append(f"ImagingStudy elements {', '.join(changed_elements(existing, output.imaging_study))}")
    if output.delete_imaging_study is not None:
        parts.append("ImagingStudy deleted")
    if output.patients:
        parts.append(f"{len(output.patients)} Patient(s)")
    if output.observations or output.delete_observations:
        parts.append(f"{len(output.observations)} Observation(s) written, {len(output.delete_observations)} deleted")
    return "; ".join(parts)


def changed_elements(before: Resource | None, after: Resource) -> list[str]:
    old: dict[str, Any] = without_meta(before) or {}
    new: dict[str, Any] = without_meta(after) or {}
    names = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if (before or {}).get("meta", {}).get("source") != after.get("meta", {}).get("source"):
        names.append("meta.source")
    return names or ["(none)"]


def has_writes(output: StudyOutput | None) -> bool:
    return output is not None and bool(
        output.imaging_study
        or output.delete_imaging_study
        or output.patients
        or output.observations
        or output.delete_observations
    )


def _retry(ctx: SyncContext, fn: Any) -> Any:
    return ctx.retry(fn)
