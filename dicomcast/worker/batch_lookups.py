"""What FHIR holds for a batch (its ImagingStudies by UID, its Patients by key), looked up as early
as the feed allows.

* A batch read directly (the first of a cycle) starts the lookups of its first page's studies while
  its next pages are read; the studies and keys of the later pages are looked up when the batch is
  synced (`complete`).
* A batch read ahead (while the previous one is written) is looked up whole in the read-ahead
  thread. Those searches may come before the previous batch's writes land, so what that batch wrote
  (`Written`) is laid over them: a study or Patient it created and they missed would otherwise be
  written again, without If-Match, over it.

Early lookups are tried once; whatever fails is looked up again by the batch, with its retries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dicomcast.dicom.models import ChangeEntry, DicomJson, by_study
from dicomcast.fhir.mapping import patient_keys
from dicomcast.fhir.mapping.issues import Issues
from dicomcast.fhir.mapping.reads import StudyReads
from dicomcast.fhir.mapping.types import PatientKey, Resource
from dicomcast.worker import lookups
from dicomcast.worker.context import SyncContext

T = TypeVar("T")
StudyKey = tuple[str | None, str]  # (partition, study uid)
Groups = dict[StudyKey, list[ChangeEntry]]
Call = Callable[[Callable[[], Any]], Any]


@dataclass
class Written:
    """What a batch left in FHIR, as far as it knows: each study it handled (None: none, or deleted)
    and the Patient of each key its data named."""

    studies: dict[StudyKey, Resource | None] = field(default_factory=dict)
    patients: dict[PatientKey, Resource] = field(default_factory=dict)


@dataclass
class Lookups:
    """What FHIR held when searched: Patient keys per study, ImagingStudies by UID (of `uids`),
    Patients by key (of `searched`); `chosen` (carried from the batch before) overrides a study found."""

    keys: dict[StudyKey, list[PatientKey]]
    uids: set[str]
    existing: dict[str, list[Resource]]
    searched: set[PatientKey]
    patients: dict[PatientKey, Resource]
    chosen: dict[StudyKey, Resource | None] = field(default_factory=dict)
    read_from: Groups = field(default_factory=dict)  # the entries each study's `keys` were read from

    def carrying(self, written: Written | None) -> Lookups:
        if written is None:
            return self
        studies = {key: written.studies[key] for key in self.keys if key in written.studies}
        patients = {**self.patients, **{k: p for k, p in written.patients.items() if k in self.searched}}
        return Lookups(self.keys, self.uids, self.existing, self.searched, patients, studies)


EarlyLookups = Future[Lookups]


def look_up(ctx: SyncContext, groups: Groups, call: Call) -> Lookups:
    """The batch's studies by UID and its Patients by key: the two searches at once, the studies'
    sent before the Patient keys are read (they need only the UIDs; the keys cost CPU)."""

    def patient_keys() -> dict[StudyKey, list[PatientKey]]:
        return {key: study_patient_keys(ctx, entries) for key, entries in groups.items()}

    found = _search(ctx, {uid for _, uid in groups}, patient_keys, lambda keys: _all(keys.values()), call)
    found.read_from = groups
    return found


def complete(ctx: SyncContext, groups: Groups, early: EarlyLookups | None, carried: Written | None) -> Lookups:
    """The batch's lookups: what was looked up early (if it worked), the rest now, with retries."""
    found = early_result(early)
    if found is None:
        return look_up(ctx, groups, ctx.retry)
    keys = {key: _patient_keys(ctx, found, key, entries) for key, entries in groups.items()}
    uids = {uid for _, uid in groups} - found.uids
    wanted = _all(keys.values()) - found.searched
    if uids or wanted:
        rest = _search(ctx, uids, lambda: keys, lambda _: wanted, ctx.retry)
        found = Lookups(
            keys,
            found.uids | rest.uids,
            {**found.existing, **rest.existing},
            found.searched | rest.searched,
            {**found.patients, **rest.patients},
        )
    return Lookups(keys, found.uids, found.existing, found.searched, found.patients).carrying(carried)


def start(ctx: SyncContext, entries: Sequence[ChangeEntry]) -> EarlyLookups | None:
    """Look up `entries`' studies and Patients in a thread (the batch's first page, while the rest is read)."""
    groups = by_study(entries)
    if not groups:
        return None
    future: EarlyLookups = Future()

    def run() -> None:
        try:
            future.set_result(look_up(ctx, groups, _once))
        except BaseException as exc:  # the batch looks up again itself
            future.set_exception(exc)

    try:
        threading.Thread(target=copy_context().run, args=(run,), name="lookup", daemon=True).start()
    except RuntimeError:  # no thread to be had: the batch looks its studies up itself
        return None
    return future


def now(ctx: SyncContext, entries: Sequence[ChangeEntry]) -> EarlyLookups | None:
    """Look up a whole batch in this thread (the read-ahead's, beside the previous batch's writes)."""
    groups = by_study(entries)
    if not groups:
        return None
    future: EarlyLookups = Future()
    try:
        future.set_result(look_up(ctx, groups, _once))
    except Exception as exc:  # the batch looks up again itself
        future.set_exception(exc)
    return future


def _patient_keys(ctx: SyncContext, found: Lookups, key: StudyKey, entries: list[ChangeEntry]) -> list[PatientKey]:
    """The study's Patient keys, as looked up early when read from these very entries: later pages
    (or entries held from the batch before) may add keys, and a study's entries are read once."""
    early = found.read_from.get(key)
    if early is not None and len(early) == len(entries) and all(a is b for a, b in zip(early, entries, strict=True)):
        return found.keys[key]
    return study_patient_keys(ctx, entries)


def study_patient_keys(ctx: SyncContext, entries: Sequence[ChangeEntry]) -> list[PatientKey]:
    found: dict[PatientKey, None] = {}
    reads = StudyReads()  # a study's instances mostly carry the same patient elements: read once

    def keys_of(data: DicomJson, _: Issues) -> list[PatientKey]:
        return patient_keys(data, ctx.options)

    added: list[PatientKey] | None = None
    for entry in entries:
        if entry.metadata is None:
            continue
        try:
            keys = reads.part("patient keys", entry.metadata, Issues(entry.sequence, enforce=False), keys_of)
        except Exception:  # unreadable patient data: the mapping fails this entry alone, with its reason
            keys = []
        if keys is not added:  # a reused read hands back the very list added last
            found.update(dict.fromkeys(keys))
            added = keys
    return list(found)


def _search(
    ctx: SyncContext,
    uids: set[str],
    patient_keys: Callable[[], dict[StudyKey, list[PatientKey]]],
    wanted_of: Callable[[dict[StudyKey, list[PatientKey]]], set[PatientKey]],
    call: Call,
) -> Lookups:
    """ImagingStudies by `uids` in a thread, and meanwhile here the Patient keys, then the Patients
    `wanted_of` them."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lookup") as pool:
        studies = (
            pool.submit(copy_context().run, call, lambda: lookups.studies_by_uid(ctx.fhir, uids)) if uids else None
        )
        keys = patient_keys()
        wanted = wanted_of(keys)
        patients = call(lambda: lookups.patients_by_key(ctx.fhir, wanted)) if wanted else {}
        existing = studies.result() if studies is not None else {}
    return Lookups(keys, uids, existing, wanted, patients)


def _all(key_lists: Iterable[list[PatientKey]]) -> set[PatientKey]:
    return {k for ks in key_lists for k in ks}


def early_result(early: EarlyLookups | None) -> Lookups | None:
    """What the early lookups found; None when there were none or they failed (the batch looks up itself)."""
    if early is None:
        return None
    try:
        return early.result()
    except Exception:
        return None


def _once(fn: Callable[[], T]) -> T:
    return fn()
