"""Write one study's entries of a batch to FHIR (the ImagingStudy mapping itself is fhir/mapping/study.py):
map against what FHIR holds, write one transaction.

On 412 (someone changed a resource since it was read) the study is re-read, re-merged and
written again. On a permanent FHIR error for a multi-entry study, each entry is tried alone so
that one poison entry does not keep the others out of FHIR.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dicomcast.dicom.models import ChangeEntry
from dicomcast.errors import ConflictError, MappingError, PermanentUpstreamError, TransientUpstreamError
from dicomcast.failures import EntryFailure, FailureClass
from dicomcast.fhir.client import WriteResult, delete_entry, put_entry
from dicomcast.fhir.mapping import map_study
from dicomcast.fhir.mapping.study import needs_dose_observations
from dicomcast.fhir.mapping.types import (
    MappingWarning,
    PatientKey,
    Resource,
    SourceContext,
    StudyInput,
    StudyOutput,
)
from dicomcast.logs import get_logger
from dicomcast.worker import lookups
from dicomcast.worker.context import SyncContext

log = get_logger("dicomcast.worker")

MAX_CONFLICT_RETRIES = 5


@dataclass
class StudyResult:
    study_uid: str
    entries: int
    written: bool = False
    failures: list[EntryFailure] = field(default_factory=list)
    warnings: list[MappingWarning] = field(default_factory=list)


@dataclass
class StudyState:
    """What FHIR holds for a study and its patients, as last read or written."""

    study: Resource | None
    patients: dict[PatientKey, Resource]
    observations: list[Resource] = field(default_factory=list)


def transaction_entries(output: StudyOutput) -> list[dict[str, Any]]:
    """Patients first (the study references them), then the study, then dose Observations."""
    entries = [put_entry(p, if_match=_version(p)) for p in output.patients]
    if output.imaging_study is not None:
        entries.append(put_entry(output.imaging_study, if_match=_version(output.imaging_study)))
    if output.delete_imaging_study is not None:
        entries.append(delete_entry("ImagingStudy", str(output.delete_imaging_study["id"])))
    entries += [put_entry(o, if_match=_version(o)) for o in output.observations]
    entries += [delete_entry("Observation", str(o["id"])) for o in output.delete_observations]
    return entries


def _version(resource: Resource) -> str | None:
    meta = resource.get("meta") or {}
    version = meta.get("versionId")
    return str(version) if version else None


def sync_study(
    ctx: SyncContext,
    source_ctx: SourceContext,
    study_uid: str,
    partition: str | None,
    entries: Sequence[ChangeEntry],
    state: StudyState,
) -> StudyResult:
    """Write the study's entries; `state` is updated with what was written (for the next study of a lane)."""
    try:
        return _write_with_conflict_retry(ctx, source_ctx, study_uid, partition, entries, state)
    except PermanentUpstreamError as exc:
        if len(entries) == 1:
            return StudyResult(study_uid, 1, failures=[EntryFailure(entries[0], FailureClass.FHIR, str(exc))])
    except MappingError as exc:  # data the mapping could not turn into valid FHIR
        if len(entries) == 1:
            return StudyResult(study_uid, 1, failures=[EntryFailure(entries[0], FailureClass.DICOM, str(exc))])
    result = StudyResult(study_uid, len(entries))
    for entry in entries:  # isolate the poison entry; the others still land
        one = sync_study(ctx, source_ctx, study_uid, partition, [entry], state)
        result.written |= one.written
        result.failures += one.failures
        result.warnings += one.warnings
    return result


def _write_with_conflict_retry(
    ctx: SyncContext,
    source_ctx: SourceContext,
    study_uid: str,
    partition: str | None,
    entries: Sequence[ChangeEntry],
    state: StudyState,
) -> StudyResult:
    for _ in range(MAX_CONFLICT_RETRIES):
        if needs_dose_observations(entries, state.study):
            state.observations = lookups.observations_of(ctx.fhir, state.study, study_uid)
        output = map_output(
            StudyInput(study_uid, partition, entries, state.study, state.patients, state.observations), source_ctx, ctx
        )
        result = StudyResult(
            study_uid,
            len(entries),
            failures=list(output.failures),
            warnings=list(output.warnings),
        )
        planned = transaction_entries(output)
        if not planned:
            return result
        try:
            outcomes = write_alone(ctx, planned)
        except ConflictError:
            lookups.refresh(ctx.fhir, study_uid, source_ctx, state)
            continue
        remember_written(output, outcomes, state)
        result.written = True
        return result
    raise TransientUpstreamError("FHIR server", f"study {study_uid}: version conflicts persisted")


def map_output(study: StudyInput, source_ctx: SourceContext, ctx: SyncContext) -> StudyOutput:
    """The pure mapping; whatever it raises on hostile data fails these entries, never the cycle."""
    try:
        return map_study(study, source_ctx, ctx.options)
    except MappingError:
        raise
    except Exception as exc:  # a mapping bug met by this data (RecursionError, ...)
        log.error("mapping raised", study_uid=study.study_uid, error_type=type(exc).__name__, where=_where(exc))
        raise MappingError(f"the mapping could not read this data ({type(exc).__name__})") from None


def _where(exc: BaseException) -> str:
    """file:line of the innermost frame: enough to find the bug, without the message (it may hold values)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"


def write_alone(ctx: SyncContext, planned: list[dict[str, Any]]) -> list[WriteResult]:
    """One transaction; past DicomCastWorker:MaxBundleEntries (a dose SR with hundreds of irradiation
    events), the study and its Patients go first and the Observations follow in further transactions.
    Each write is idempotent, so a crash between them is repaired by the replay."""
    limit = ctx.tuning.max_bundle_entries
    if len(planned) <= limit:
        return ctx.fhir.transaction(planned)
    outcomes: list[WriteResult] = []
    for start in range(0, len(planned), limit):
        outcomes += ctx.fhir.transaction(planned[start : start + limit])
    return outcomes


def remember_written(output: StudyOutput, outcomes: Sequence[Any], state: StudyState) -> None:
    """Keep the lane's view current: the written resources with their new versionId."""
    written = [*output.patients]
    if output.imaging_study is not None:
        written.append(output.imaging_study)
    for resource, outcome in zip(written, outcomes, strict=False):
        updated = {**resource, "meta": {**resource.get("meta", {}), "versionId": outcome.version_id}}
        if resource["resourceType"] == "Patient":
            for key in lookups.patient_keys_of(updated):
                state.patients[key] = updated
        else:
            state.study = updated
    if output.delete_imaging_study is not None:
        state.study = None
