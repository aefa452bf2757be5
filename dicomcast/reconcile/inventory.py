"""What a DICOM source holds, asked with QIDO-RS; WADO-RS study metadata only for studies rewritten.

Every answer is untrusted: a page that is not a JSON array is a transient fault (never "no studies"),
items without UIDs are ignored, and a server that ignores `offset` (the same page again) ends the
listing instead of looping. Azure pages at most 200 results (`limit`), newest first, and answers
204 when nothing (more) matches; Orthanc answers [] and accepts the same parameters.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from dicomcast.dicom.models import DicomJson
from dicomcast.errors import TransientUpstreamError

QIDO_LIMIT = 200  # the Azure DICOM service's largest page
STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"
MODALITY, SOP_CLASS, INSTANCE_NUMBER = "00080060", "00080016", "00200013"
STUDY_INSTANCES = "00201208"  # NumberOfStudyRelatedInstances, computed by the server
INSTANCE_FIELDS = f"{SOP_CLASS},{INSTANCE_NUMBER}"


class DicomWebSource(Protocol):
    """The parts of a change source reconciliation uses (AzureChangeFeedSource, OrthancSource)."""

    name: str

    def dicomweb_json(self, path: str, params: dict[str, str] | None = None, partition: str | None = None) -> Any:
        """The JSON answer of a DICOMweb GET; None for an explicit 404/410, [] for a search's 204."""
        ...

    def partitions_in_use(self) -> list[str | None]: ...

    def endpoint_address(self, partition: str | None) -> str: ...


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
            params[STUDY_UID] = self.study_uid
        if self.date_from or self.date_to:
            low = f"{self.date_from:%Y%m%d}" if self.date_from else ""
            high = f"{self.date_to:%Y%m%d}" if self.date_to else ""
            params["00080020"] = f"{low}-{high}"
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
                found.update(StudyRef(partition or "", uid) for uid in map(_uid_of, page) if uid)
        return sorted(found)

    def instances(self, ref: StudyRef) -> list[DicomInstance]:
        """The study's instances now; empty when the study is gone."""
        seen: dict[str, DicomInstance] = {}
        path = f"/studies/{ref.study_uid}/instances"
        for page in self._pages(path, {"includefield": INSTANCE_FIELDS}, ref.partition):
            for item in page:
                instance = instance_of(item)
                if instance is not None and (text_of(item, STUDY_UID) or ref.study_uid) == ref.study_uid:
                    seen[instance.sop_instance_uid] = instance
        return list(seen.values())

    def metadata(self, ref: StudyRef) -> list[DicomJson]:
        """WADO-RS metadata of every instance of the study (one request); empty when it is gone."""
        body = self._get(f"/studies/{ref.study_uid}/metadata", None, ref.partition)
        if body is None:
            return []
        if not isinstance(body, list):
            raise TransientUpstreamError("DICOMweb", f"WADO-RS metadata of study {ref.study_uid} is not a JSON array")
        return [item for item in body if isinstance(item, dict) and text_of(item, STUDY_UID) == ref.study_uid]


def text_of(item: DicomJson, tag: str) -> str | None:
    element = item.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    if not isinstance(values, list) or not values or values[0] is None:
        return None
    return str(values[0]).strip() or None


def _uid_of(item: DicomJson) -> str | None:
    return text_of(item, STUDY_UID)


def instance_of(item: DicomJson) -> DicomInstance | None:
    series_uid, sop_uid = text_of(item, SERIES_UID), text_of(item, SOP_UID)
    if not series_uid or not sop_uid:
        return None
    number = text_of(item, INSTANCE_NUMBER)
    return DicomInstance(
        series_uid,
        sop_uid,
        text_of(item, MODALITY),
        text_of(item, SOP_CLASS),
        int(number) if number and number.isdigit() else None,  # the mapping leaves negative numbers out
    )
