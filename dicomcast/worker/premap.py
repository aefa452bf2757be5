"""The next batch mapped while this one's transactions are in flight.

Once a batch's transactions are sent, the worker waits for FHIR; the next batch then had to be
mapped before anything of it was sent, while FHIR waited in turn. So in that wait the worker does
what it can of the next batch:

* its cut (study_cut.py), from the two batches read ahead, and its lookups (made beside this
  batch's writes: batch_lookups.py);
* each of its studies that this batch's writes cannot change is mapped: not one of this batch's
  studies, none of its Patient keys named by this batch, alone in its lane (no other study of its
  batch shares a Patient), looked up early, its Endpoint decided, no dose Observations to read.

When the next batch is written, a study mapped ahead is used only if its entries, its Endpoint and
what it was mapped from still hold (`still_valid`, against what this batch wrote); anything else is
mapped then, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from dicomcast.dicom.models import ChangeEntry, Page, by_study
from dicomcast.fhir.mapping.types import PatientKey, SourceContext
from dicomcast.worker import batch_lookups, endpoints, study_cut
from dicomcast.worker import lanes as study_lanes
from dicomcast.worker.batch_lookups import EarlyLookups, Lookups, StudyKey, Written
from dicomcast.worker.bundles import Planned, plan_ahead
from dicomcast.worker.context import SyncContext
from dicomcast.worker.readahead import BatchReader
from dicomcast.worker.study_cut import Cut, Held, Limits


@dataclass(frozen=True)
class Ahead:
    """The next batch as prepared while the current one was written."""

    page: Page  # the batch as read ahead
    cut: Cut
    mapped: dict[StudyKey, Planned] = field(default_factory=dict)


def prepare(
    ctx: SyncContext,
    reader: BatchReader[EarlyLookups],
    cursor: str,
    held: Held,
    touched: Mapping[StudyKey, list[PatientKey]],
    limits: Callable[[Page], Limits],
) -> Ahead | None:
    """The batch read ahead from `cursor` (after this one, which holds `held` back for it and names
    `touched`), cut and mapped as far as this batch's writes allow; None when it is not read ahead."""
    following = reader.following()
    if following is None:
        return None
    after = reader.following_after()
    batch = study_cut.cut(following, cursor, held, after.entries if after is not None else None, limits(following))
    early = batch_lookups.early_result(reader.following_prepared())
    return Ahead(following, batch, _mapped(ctx, batch.entries, early, touched) if early is not None else {})


def cut_of(ahead: Ahead | None, page: Page) -> Cut | None:
    """The cut prepared for `page`, if it was prepared from this very batch (not a batch read again)."""
    return ahead.cut if ahead is not None and ahead.page is page else None


def still_valid(
    mapped: Mapping[StudyKey, Planned],
    groups: Mapping[StudyKey, list[ChangeEntry]],
    found: Lookups,
    contexts: Mapping[str | None, SourceContext],
    carried: Written | None,
) -> dict[StudyKey, Planned]:
    """The studies mapped ahead whose entries, Endpoint and inputs are still the batch's."""
    written_studies = set(carried.studies) if carried is not None else set()
    written_patients = set(carried.patients) if carried is not None else set()
    valid: dict[StudyKey, Planned] = {}
    for key, plan in mapped.items():
        entries = groups.get(key)
        if entries is None or len(entries) != len(plan.job.entries):
            continue
        if any(a is not b for a, b in zip(entries, plan.job.entries, strict=True)):
            continue
        if key in written_studies or written_patients.intersection(found.keys.get(key, ())):
            continue
        if contexts.get(key[0]) != plan.job.source_ctx or plan.result.written:
            continue
        valid[key] = plan
    return valid


def _mapped(
    ctx: SyncContext,
    entries: list[ChangeEntry],
    found: Lookups,
    touched: Mapping[StudyKey, list[PatientKey]],
) -> dict[StudyKey, Planned]:
    groups = by_study(entries)
    keys = {key: batch_lookups.study_patient_keys(ctx, group) for key, group in groups.items()}
    touched_patients = {k for ks in touched.values() for k in ks}
    mapped: dict[StudyKey, Planned] = {}
    for lane in study_lanes.lanes(groups, keys):
        key = lane[0]
        if len(lane) > 1 or key in touched or touched_patients.intersection(keys[key]):
            continue  # what this batch writes, or a study before it in its lane, may change its inputs
        if key[1] not in found.uids or not found.searched.issuperset(keys[key]):
            continue  # looked up by the batch itself, later
        context = endpoints.decided_context(ctx, key[0])
        if context is None:
            continue
        view = study_lanes.view(found.patients, lane, keys)
        plan = plan_ahead(ctx, study_lanes.job(key, groups, {key[0]: context}, found, view))
        if plan is not None:
            mapped[key] = plan
    return mapped
