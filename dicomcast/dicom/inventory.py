"""What a DICOM source holds, asked with QIDO-RS; WADO-RS study metadata only where it is mapped.

Used by `dicomcast reconcile` (reconcile/) and by the worker's deletion pass (worker/reconcile.py).
Every answer is untrusted: a page that is not a JSON array is a transient fault (never "no studies",
never "deleted"), items without UIDs and elements that cannot be read are ignored, and a server that
ignores `offset` (the same page again) ends the listing instead of looping. Azure pages at most 200
results (`limit`), newest first, and answers 204 when nothing (more) matches; Orthanc answers [] and
accepts the same parameters.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from dicomcast.dicom import dicomjson, tags
from dicomcast.dicom.models import ChangeAction, ChangeEntry, DicomJson, DicomWebSource
from dicomcast.errors import TransientUpstreamError

T = TypeVar("T")
QIDO_LIMIT = 200  # the Azure DICOM service's largest page
INSTANCE_FIELDS = f"{tags.SOP_CLASS_UID},{tags.INSTANCE_NUMBER}"
RECONCILE_SEQUENCE = 0  # entries made by reconciliation have no feed sequence


@dataclass(frozen=True, order=True)
class StudyRef:
    """A study of a source: (partition, Study Instance UID). Ordered, so a run can resume after one."""

    partition_key: str  # "" without partitions (sorts first)
    study_uid: str

    @property
    def partition(self) -> str | None:
        return self.partition_key or None


@dataclass(frozen=True)
class DicomInstance:
    series_uid: str
    sop_instance_uid: str
    modality: str | None
    sop_class: str | None
    number: int | None


@dataclass(frozen=True)
class StudyFilter:
    """Which studies a run covers: one study, or a StudyDate range (either end open)."""

    study_uid: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def qido_params(self) -> dict[str, str]:
        params = {}
        if self.study_uid:
            params[tags.STUDY_INSTANCE_UID] = self.study_uid
        if self.date_from or self.date_to:
            low = f"{self.date_from:%Y%m%d}" if self.date_from else ""
            high = f"{self.date_to:%Y%m%d}" if self.date_to else ""
            params[tags.STUDY_DATE] = f"{low}-{high}"
        return params

    def describe(self) -> str:
        parts = [f"study {self.study_uid}"] if self.study_uid else []
        if self.date_from or self.date_to:
            parts.append(f"StudyDate {self.date_from or '…'} to {self.date_to or '…'}")
        return ", ".join(parts) or "all studies"


class Inventory:
    """QIDO-RS and WADO-RS reads of one source, counted (for the report's requests per study)."""

    def __init__(self, source: DicomWebSource) -> None:
        self.source = source
        self.requests = 0
        self._lock = threading.Lock()

    def _get(self, path: str, params: dict[str, str] | None, partition: str | None) -> Any:
        with self._lock:
            self.requests += 1
        return self.source.dicomweb_json(path, params, partition)

    def _pages(self, path: str, params: dict[str, str], partition: str | None) -> Iterator[list[DicomJson]]:
        offset, previous = 0, None
        while True:
            body = self._get(path, {**params, "offset": str(offset), "limit": str(QIDO_LIMIT)}, partition)
            if body is None:  # an explicit 404: the study (of a study-level search) is gone
                return
            if not isinstance(body, list):
                raise TransientUpstreamError("DICOMweb", f"QIDO-RS {path} did not answer a JSON array")
            items = [item for item in body if isinstance(item, dict)]
            if not items or items == previous:  # the end, or a server that ignores offset
                return
            yield items
            if len(body) < QIDO_LIMIT:
                return
            offset, previous = offset + len(body), items

    def studies(self, filters: StudyFilter) -> list[StudyRef]:
        """Every matching study of every partition in use, sorted (the order a run works in)."""
        found: set[StudyRef] = set()
        for partition in self.source.partitions_in_use():
            for page in self._pages("/studies", filters.qido_params(), partition):
                found.update(StudyRef(partition or "", uid) for uid in map(study_uid_of, page) if uid)
        return sorted(found)

    def instances(self, ref: StudyRef) -> list[DicomInstance]:
        """The study's instances now; empty when the study is gone."""
        seen: dict[str, DicomInstance] = {}
        for item in self._study_items(ref, {"includefield": INSTANCE_FIELDS}):
            instance = instance_of(item)
            if instance is not None:
                seen[instance.sop_instance_uid] = instance
        return list(seen.values())

    def sop_instance_uids(self, ref: StudyRef) -> set[str]:
        """SOP Instance UIDs of the study now (the worker's deletion pass); empty when it is gone.
        Any item naming one counts as present: only its absence from every page means "deleted"."""
        return {uid for uid in map(sop_instance_uid_of, self._study_items(ref, {})) if uid}

    def _study_items(self, ref: StudyRef, params: dict[str, str]) -> Iterator[DicomJson]:
        """The instance-level QIDO-RS answer of one study, paged; items of another study left out."""
        path = f"/studies/{ref.study_uid}/instances"
        for page in self._pages(path, params, ref.partition):
            for item in page:
                if (study_uid_of(item) or ref.study_uid) == ref.study_uid:
                    yield item

    def metadata(self, ref: StudyRef) -> list[DicomJson]:
        """WADO-RS metadata of every instance of the study (one request); empty when it is gone."""
        body = self._get(f"/studies/{ref.study_uid}/metadata", None, ref.partition)
        if body is None:
            return []
        if not isinstance(body, list):
            raise TransientUpstreamError("DICOMweb", f"WADO-RS metadata of study {ref.study_uid} is not a JSON array")
        return [item for item in body if isinstance(item, dict) and study_uid_of(item) == ref.study_uid]


def readable(read: Callable[[], T | None]) -> T | None:
    """A dicomjson reader over an untrusted answer: an element that cannot be read is absent."""
    try:
        return read()
    except dicomjson.InvalidValueError:
        return None


def text_of(item: DicomJson, tag: str) -> str | None:
    return readable(lambda: dicomjson.text(item, tag))


def study_uid_of(item: DicomJson) -> str | None:
    return text_of(item, tags.STUDY_INSTANCE_UID)


def series_uid_of(item: DicomJson) -> str | None:
    return text_of(item, tags.SERIES_INSTANCE_UID)


def sop_instance_uid_of(item: DicomJson) -> str | None:
    return text_of(item, tags.SOP_INSTANCE_UID)


def instance_of(item: DicomJson) -> DicomInstance | None:
    series_uid, sop_uid = series_uid_of(item), sop_instance_uid_of(item)
    if not series_uid or not sop_uid:
        return None
    number = readable(lambda: dicomjson.integer(item, tags.INSTANCE_NUMBER))
    return DicomInstance(
        series_uid,
        sop_uid,
        text_of(item, tags.MODALITY),
        text_of(item, tags.SOP_CLASS_UID),
        number if number is not None and number >= 0 else None,  # the mapping leaves negative numbers out
    )


def creation(ref: StudyRef, item: DicomJson) -> ChangeEntry:
    """A `create` entry for one instance's metadata, as reconciliation writes it."""
    return ChangeEntry(
        sequence=RECONCILE_SEQUENCE,
        action=ChangeAction.CREATE,
        study_uid=ref.study_uid,
        series_uid=series_uid_of(item) or "",
        sop_instance_uid=sop_instance_uid_of(item) or "",
        partition=ref.partition,
        metadata=item,
    )


def deletion(ref: StudyRef, series_uid: str, sop_instance_uid: str) -> ChangeEntry:
    """A `delete` entry for an instance the source no longer holds."""
    return ChangeEntry(
        RECONCILE_SEQUENCE, ChangeAction.DELETE, ref.study_uid, series_uid, sop_instance_uid, partition=ref.partition
    )
