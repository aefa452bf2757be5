"""Repairs, through the normal write path: duplicates merged, then studies rewritten or deleted.

Duplicates first: resources that reference an extra ImagingStudy (Observation.partOf and
.derivedFrom, the references a FHIR search can find) are re-pointed at the kept one with If-Match,
then the extras are deleted. Each step is idempotent, so a run stopped between them is finished by
the next. Then the studies are written as a page of synthesised entries by worker/page.py (one
transaction per study, If-Match, 412 re-read and re-merged), which writes only what differs;
permanent failures are recorded in the failure table as the sync records them (checkpoint untouched;
worker/reconcile.py write_reconciled, which the worker's deletion pass uses too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from dicomcast.dicom.inventory import StudyRef
from dicomcast.dicom.models import ChangeEntry
from dicomcast.errors import ConflictError, TransientUpstreamError
from dicomcast.fhir.client import delete_entry, put_entry
from dicomcast.fhir.mapping.types import Resource, StudyOutput
from dicomcast.reconcile.compare import StudyCheck, owned_by_source
from dicomcast.reconcile.plan import entries_of, has_writes
from dicomcast.worker.context import SyncContext
from dicomcast.worker.reconcile import write_reconciled

REFERRING = (("Observation", "part-of"), ("Observation", "derived-from"))
MAX_CONFLICT_RETRIES = 5


@dataclass
class RepairResult:
    studies_written: int = 0
    duplicates_deleted: int = 0
    references_moved: int = 0
    failures: int = 0
    failed_studies: frozenset[str] = frozenset()


def repair(ctx: SyncContext, checks: Sequence[StudyCheck], outputs: dict[StudyRef, StudyOutput]) -> RepairResult:
    result = RepairResult()
    for check in checks:
        if check.extras and check.kept is not None:
            moved = _retry(ctx, partial(merge_duplicates, ctx, check.kept, check.extras))
            result.references_moved += moved
            result.duplicates_deleted += len(check.extras)
    entries: list[ChangeEntry] = []
    for check in checks:
        if check.gone and check.kept is not None and not entries_of(check):
            _delete_empty(ctx, check, result)
        elif check.gone or has_writes(outputs.get(check.ref)) or _fails(outputs.get(check.ref)):
            entries += entries_of(check)  # failing entries too: the write path records them
    if not entries:
        return result
    page = write_reconciled(ctx, entries)
    result.studies_written += sum(1 for s in page.studies if s.written)
    failures = page.failures
    result.failures += len(failures)
    result.failed_studies = frozenset(f.entry.study_uid for f in failures)
    return result


def _fails(output: StudyOutput | None) -> bool:
    return output is not None and bool(output.failures)


def _delete_empty(ctx: SyncContext, check: StudyCheck, result: RepairResult) -> None:
    """A study gone from DICOM whose ImagingStudy lists no instance: deleted as the delete path
    deletes an emptied study of ours (a study made by someone else is left)."""
    kept = check.kept
    if kept is not None and owned_by_source(kept, check.source_ctx):
        _retry(ctx, lambda: ctx.fhir.transaction([delete_entry("ImagingStudy", str(kept["id"]))]))
        result.studies_written += 1


def merge_duplicates(ctx: SyncContext, kept: Resource, extras: Sequence[Resource]) -> int:
    """Point every reference to an extra at `kept`, then delete the extras. Returns references moved."""
    moved = 0
    for extra in extras:
        old, new = f"ImagingStudy/{extra['id']}", f"ImagingStudy/{kept['id']}"
        for _ in range(MAX_CONFLICT_RETRIES):
            referrers = _referrers(ctx, old)
            puts = [put_entry(_repointed(r, old, new), if_match=_version(r)) for r in referrers]
            try:
                if puts:
                    ctx.fhir.transaction(puts)
            except ConflictError:
                continue  # a referrer changed meanwhile: search and re-point again
            moved += len(puts)
            break
        else:
            raise TransientUpstreamError("FHIR server", f"{old}: version conflicts persisted while moving references")
    ctx.fhir.transaction([delete_entry("ImagingStudy", str(e["id"])) for e in extras])
    return moved


def _referrers(ctx: SyncContext, reference: str) -> list[Resource]:
    found: dict[tuple[str, str], Resource] = {}
    for kind, param in REFERRING:
        for resource in ctx.fhir.search(kind, {param: reference}):
            if "id" in resource:
                found.setdefault((kind, str(resource["id"])), resource)
    return list(found.values())


def _repointed(value: Any, old: str, new: str) -> Any:
    """`value` with every Reference to `old` (relative, or absolute ending in it) now to `new`."""
    if isinstance(value, list):
        return [_repointed(v, old, new) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _repointed(v, old, new) for k, v in value.items()}
    reference = out.get("reference")
    if isinstance(reference, str) and (reference == old or reference.endswith(f"/{old}")):
        out["reference"] = new
    return out


def _version(resource: Resource) -> str | None:
    version = (resource.get("meta") or {}).get("versionId")
    return str(version) if version else None


def _retry(ctx: SyncContext, fn: Any) -> Any:
    return ctx.retry(fn)
