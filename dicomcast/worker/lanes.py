"""Lanes: the studies of a batch that share a Patient, written one after another (page.py), and the
job of one study, built from what the batch looked up."""

from __future__ import annotations

from dicomcast.dicom.models import ChangeEntry
from dicomcast.fhir.mapping.types import PatientKey, Resource, SourceContext
from dicomcast.worker import lookups
from dicomcast.worker.batch_lookups import Lookups, StudyKey
from dicomcast.worker.bundles import StudyJob
from dicomcast.worker.study_write import StudyState


def job(
    key: StudyKey,
    groups: dict[StudyKey, list[ChangeEntry]],
    contexts: dict[str | None, SourceContext],
    found: Lookups,
    patients: dict[PatientKey, Resource],
) -> StudyJob:
    partition, study_uid = key
    source_ctx = contexts[partition]
    if key in found.chosen:  # as the batch before left it
        study = found.chosen[key]
    else:
        study = lookups.pick_study(found.existing.get(study_uid, []), source_ctx, source_ctx.service_root)
    return StudyJob(source_ctx, study_uid, partition, groups[key], StudyState(study, patients))


def view(
    patients: dict[PatientKey, Resource], lane: list[StudyKey], keys: dict[StudyKey, list[PatientKey]]
) -> dict[PatientKey, Resource]:
    """The Patients of the lane's own keys: the mapping looks Patients up by these keys alone, and a
    copy of every Patient of the batch for every lane was quadratic in the batch."""
    return {k: patients[k] for study in lane for k in keys[study] if k in patients}


def lanes(groups: dict[StudyKey, list[ChangeEntry]], keys: dict[StudyKey, list[PatientKey]]) -> list[list[StudyKey]]:
    """Studies that share any patient key go into the same lane, in feed order. Union-find over the
    studies: linear in the batch, where merging lanes study by study was quadratic (1,000 one-instance
    studies of 1,000 patients cost a million steps)."""
    studies = list(groups)
    parent = list(range(len(studies)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[PatientKey, int] = {}
    for i, study in enumerate(studies):
        for key in keys[study]:
            a, b = root(i), root(first_with.setdefault(key, i))
            parent[max(a, b)] = min(a, b)  # the root is a lane's first study
    lanes: dict[int, list[StudyKey]] = {}
    for i, study in enumerate(studies):
        lanes.setdefault(root(i), []).append(study)
    return list(lanes.values())
