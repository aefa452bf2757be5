"""The Azure DICOM service's change-feed table, computed as its SQL computes it.

Each row keeps OriginalWatermark (the version its event wrote) and CurrentWatermark (the instance's
current version). State: `deleted` when CurrentWatermark is NULL, `replaced` when it differs from
OriginalWatermark, else `current` (ChangeFeed.sql, SqlChangeFeedStoreV4.cs):
- create: a row, then every row of the instance points at the new watermark;
- update: a row per updated instance, then every row of the instance points at the new watermark;
- delete: a row per deleted instance (a study delete fans out), then every row of it gets NULL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

from tests.servers.azure_dicom_data import DicomJson, uids

DEFAULT_PARTITION = "Microsoft.Default"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Bulk update may change Patient Identification/Demographic attributes and these study attributes.
_UPDATABLE_STUDY_TAGS = {"00080090", "00080050", "00081030"}

InstanceKey = tuple[str, str, str, str]  # (partition, study, series, SOP instance)


def ticks_now(clock: Callable[[], datetime]) -> int:
    """The clock in .NET ticks (100 ns) since 1970."""
    return (clock().astimezone(UTC) - _EPOCH) // timedelta(microseconds=1) * 10


@dataclass
class Row:
    sequence: int
    partition: str
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    action: str  # Create | Update | Delete
    ticks: int
    original_watermark: int
    current_watermark: int | None

    @property
    def key(self) -> InstanceKey:
        return (self.partition, self.study_uid, self.series_uid, self.sop_instance_uid)

    @property
    def state(self) -> str:
        if self.current_watermark is None:
            return "Deleted"
        return "Current" if self.current_watermark == self.original_watermark else "Replaced"


class ChangeFeedTable:
    """Instances, their versions and the change-feed rows; thread-safe."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.rows: list[Row] = []
        self.versions: dict[int, DicomJson] = {}  # watermark -> DICOM JSON of that version
        self.current: dict[InstanceKey, int] = {}  # existing instances -> current watermark
        self.partitions: dict[str, int] = {DEFAULT_PARTITION: 1}
        self._rows_of: dict[InstanceKey, list[Row]] = {}  # so a store is O(1), not a scan of every row
        self._sequence = 0
        self._watermark = 0

    def _append(self, key: InstanceKey, action: str, original: int) -> Row:
        self._sequence += 1
        row = Row(self._sequence, *key, action, ticks_now(self.clock), original, original)
        self.rows.append(row)
        self._rows_of.setdefault(key, []).append(row)
        return row

    def _point_rows_at(self, key: InstanceKey, watermark: int | None) -> None:
        for row in self._rows_of.get(key, []):
            row.current_watermark = watermark

    def skip_sequences(self, count: int) -> None:
        with self.lock:
            self._sequence += count

    def store(self, instance: DicomJson, partition: str) -> Row:
        """STOW (or upsert): a create row; earlier rows of the instance become `replaced`."""
        with self.lock:
            self.partitions.setdefault(partition, len(self.partitions) + 1)
            key = (partition, *uids(instance))
            self._watermark += 1
            self.versions[self._watermark] = instance
            row = self._append(key, "Create", self._watermark)
            self.current[key] = self._watermark
            self._point_rows_at(key, self._watermark)
            return row

    def update_study(self, study_uid: str, changes: DicomJson, partition: str) -> list[Row]:
        """Bulk update: one `update` row per instance of the study."""
        with self.lock:
            rows = []
            for key in self.instances_of(partition, study_uid):
                self._watermark += 1
                self.versions[self._watermark] = {**self.versions[self.current[key]], **changes}
                rows.append(self._append(key, "Update", self._watermark))
                self.current[key] = self._watermark
                self._point_rows_at(key, self._watermark)
            return rows

    def delete(self, keys: list[InstanceKey]) -> list[Row]:
        with self.lock:
            rows = []
            for key in keys:
                rows.append(self._append(key, "Delete", self.current.pop(key)))
                self._point_rows_at(key, None)
            return rows

    def instances_of(self, partition: str, study_uid: str, series_uid: str | None = None) -> list[InstanceKey]:
        with self.lock:
            return [
                key
                for key in self.current
                if key[0] == partition and key[1] == study_uid and series_uid in (None, key[2])
            ]

    def metadata(self, key: InstanceKey) -> DicomJson | None:
        with self.lock:
            watermark = self.current.get(key)
            return None if watermark is None else self.versions[watermark]

    def row_metadata(self, row: Row) -> DicomJson | None:
        """The *current* version's metadata, for rows of instances that still exist."""
        with self.lock:
            return None if row.current_watermark is None else self.versions[row.current_watermark]

    # ---- reads, as GetChangeFeedV39.sql / GetChangeFeedByTimeV39.sql ----

    def by_sequence(self, offset: int, limit: int) -> list[Row]:
        with self.lock:
            return [row for row in self.rows if offset < row.sequence <= offset + limit]

    def by_time(self, start: int, end: int, offset: int, limit: int) -> list[Row]:
        with self.lock:
            window = sorted((row for row in self.rows if start <= row.ticks < end), key=lambda r: (r.ticks, r.sequence))
            return window[offset : offset + limit]

    def latest(self, by_time: bool) -> Row | None:
        with self.lock:
            if not self.rows:
                return None
            if by_time:
                return max(self.rows, key=lambda r: (r.ticks, r.sequence))
            return max(self.rows, key=lambda r: r.sequence)


def change_dataset(changes: dict[str, Any]) -> DicomJson:
    """Bulk-update changes from keywords or tags to DICOM JSON; refuses attributes it cannot update."""
    result: DicomJson = {}
    for name, value in changes.items():
        tag_number = int(name, 16) if len(name) == 8 and _is_hex(name) else tag_for_keyword(name)
        if tag_number is None:
            raise KeyError(f"unknown DICOM keyword {name}")
        tag = f"{tag_number:08X}"
        vr = dictionary_VR(tag_number)
        if not (tag.startswith("0010") or tag in _UPDATABLE_STUDY_TAGS) or vr == "SQ":
            raise ValueError(f"{name} cannot be changed by a bulk update")
        if isinstance(value, dict):
            result[tag] = value
        else:
            result[tag] = {"vr": vr, "Value": [{"Alphabetic": value} if vr == "PN" else value]}
    return result


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True
