"""Orthanc as a change source: `/changes` for the feed, the DICOMweb plugin for metadata.

`DicomWeb:Endpoint` is Orthanc's root URL (`http://host:8042`); a trailing `/dicom-web` is accepted
too. Only `NewInstance` changes are synced (the study/series rows follow from them). Orthanc erases
the change rows of deleted resources, so deletions never appear here (see reconciliation).
The cursor is Orthanc's change `Seq`.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

from dicomcast.config.settings import DicomWebSettings
from dicomcast.dicom import tags
from dicomcast.dicom.models import (
    MAX_SEQUENCE,
    UNKNOWN_SEQUENCE,
    ChangeAction,
    ChangeEntry,
    CursorKind,
    DicomJson,
    FeedPosition,
    Page,
    SourceTraits,
    UnreadableEntry,
    is_uid,
    mapped_elements,
    metadata_problem,
    recordable_uid,
)
from dicomcast.errors import ConfigError, TransientUpstreamError, UnparseableBodyError
from dicomcast.http import Upstream, get_json
from dicomcast.urls import redact_url, with_path

SERVICE = "Orthanc"
HINT = "DicomWeb:Authentication:BasicCredential:*"
MAX_LIMIT = 1000
_NOT_METADATA = "the instance's metadata is not one DICOM JSON object"
_ORTHANC_ID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")  # a SHA-1 in five groups


def orthanc_root(settings: DicomWebSettings) -> str:
    endpoint = (settings.private_endpoint or settings.endpoint or "").rstrip("/")
    if not endpoint:
        raise ConfigError(
            ["DicomWeb:Endpoint: required (set env DicomWeb__Endpoint or Key Vault secret DicomWeb--Endpoint)"]
        )
    return _root_of(endpoint)


def _root_of(url: str) -> str:
    """Orthanc's root from its URL or its DICOMweb root; a query (a gateway's key) is kept."""
    return with_path(url.rstrip("/"), lambda path: path.rstrip("/").removesuffix("/dicom-web"))


class OrthancSource:
    """ChangeSource over Orthanc's REST API and DICOMweb plugin."""

    def __init__(
        self,
        settings: DicomWebSettings,
        client: httpx.Client,
        *,
        batch_size: int | None = None,
        setting_prefix: str = "DicomWeb",
    ) -> None:
        # Names and FHIR addresses never hold credentials (urls.redact_url); requests use the URL as given.
        public = redact_url(_root_of(settings.endpoint or ""))
        self.name = f"orthanc:{public}"
        self.traits = SourceTraits("Orthanc /changes", None, partitions=False, cursor_kind=CursorKind.SEQUENCE)
        self._public_dicomweb = with_path(public, lambda path: f"{path.rstrip('/')}/dicom-web")
        setting = f"{setting_prefix}:{'PrivateEndpoint' if settings.private_endpoint else 'Endpoint'}"
        self._upstream = Upstream(SERVICE, setting, f"{setting_prefix}:Authentication:BasicCredential:*")
        self._http = client
        self._limit = min(batch_size or 100, MAX_LIMIT)
        # Orthanc ids are hashes of UIDs, so parents never change: cache their UIDs.
        self._series: dict[str, tuple[str, str]] = {}  # series id -> (study uid, series uid)

    # -- ChangeSource ---------------------------------------------------------------------------
    def read_page(self, cursor: str | None) -> Page:
        since = int(cursor or 0)
        body = self._changes_isolating(since)
        if body is None:  # the change after `since` can never be decoded: one failure, then step past it
            reason = "the change cannot be decoded (JSON nested too deeply or numbers too long)"
            return Page(entries=(), next_cursor=str(since + 1), caught_up=False, unreadable=[_unknown(reason)])
        changes = body["Changes"]
        entries: list[ChangeEntry] = []
        skipped: list[tuple[ChangeEntry, str]] = []
        unreadable: list[UnreadableEntry] = []
        for change in changes:
            if not isinstance(change, dict) or change.get("ChangeType") != "NewInstance":
                if not isinstance(change, dict):
                    unreadable.append(UnreadableEntry(UNKNOWN_SEQUENCE, "change is not a JSON object"))
                continue
            entry = self._entry(change)
            if isinstance(entry, ChangeEntry):
                entries.append(entry)
            elif isinstance(entry, UnreadableEntry):
                unreadable.append(entry)
            else:
                skipped.append(entry)
        last = max(
            [since, _sequence(body.get("Last")) or since, *(_sequence(c.get("Seq")) or 0 for c in _dicts(changes))]
        )
        with_metadata, unreadable_metadata = self._attach_metadata(entries)
        return Page(
            entries=with_metadata,
            next_cursor=str(last),
            caught_up=bool(body.get("Done", True)),
            skipped=skipped,
            unreadable=unreadable + unreadable_metadata,
        )

    def read_metadata(self, entry: ChangeEntry) -> DicomJson | None:
        url = f"/dicom-web/studies/{entry.study_uid}/series/{entry.series_uid}/instances/{entry.sop_instance_uid}/metadata"
        items = self._get_json(url, missing_ok=True)
        if items is None:
            return None
        item = items[0] if isinstance(items, list) and len(items) == 1 else None
        if not isinstance(item, dict):
            raise UnparseableBodyError(SERVICE, _NOT_METADATA)
        problem = metadata_problem(item)
        if problem:
            raise UnparseableBodyError(SERVICE, problem)
        return dict(mapped_elements(item))

    def endpoint_address(self, partition: str | None) -> str:
        return self._public_dicomweb

    def dicomweb_json(self, path: str, params: dict[str, str] | None = None, partition: str | None = None) -> Any:
        """A DICOMweb GET (QIDO-RS, WADO-RS metadata) for reconciliation; None when 404 (Orthanc has no partitions)."""
        return self._get_json(f"/dicom-web{path}", params=params, missing_ok=True)

    def partitions_in_use(self) -> list[str | None]:
        return [None]

    def instance_count(self) -> int:
        """How many instances Orthanc holds now: `CountInstances` of `/statistics` (one request,
        whatever the archive's size); reconcile.py compares it with what was synced."""
        body = self._get_json("/statistics")
        count = body.get("CountInstances") if isinstance(body, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise TransientUpstreamError(SERVICE, "/statistics did not answer a CountInstances number")
        return count

    def new_instance_changes(self, since: int) -> int | None:
        """How many NewInstance changes follow Seq `since` (not synced yet); None when they do not
        fit in one page. A deleted instance's change is erased, so only instances still there count."""
        body = self._changes({"since": str(since), "limit": str(MAX_LIMIT)})
        if not body.get("Done", False):
            return None
        return sum(
            1 for change in body["Changes"] if isinstance(change, dict) and change.get("ChangeType") == "NewInstance"
        )

    def latest(self) -> FeedPosition:
        body = self._changes({"last": ""})
        changes = _dicts(body["Changes"])
        if not changes:
            return FeedPosition(_sequence(body.get("Last")), None)
        return FeedPosition(_sequence(changes[-1].get("Seq")), _orthanc_date(changes[-1].get("Date")))

    def describe_cursor(self, cursor: str | None) -> str:
        return f"Orthanc change Seq {cursor or 0}"

    def cursor_sequence(self, cursor: str | None) -> int | None:
        return int(cursor) if cursor and cursor.isdigit() else None

    def deletion_check(self) -> OrthancSource:
        return self  # /changes erases the changes of deleted resources: the worker's deletion pass finds them

    def dicomweb(self) -> OrthancSource:
        return self  # Orthanc's DICOMweb plugin

    def carry_over(self) -> None:
        return None  # no other checkpoint of an Orthanc feed exists to carry over

    def close(self) -> None:
        self._http.close()

    # -- details --------------------------------------------------------------------------------
    def _get_json(self, url: str, *, params: dict[str, str] | None = None, missing_ok: bool = False) -> Any:
        """The JSON body; None only for an explicit 404/410 when `missing_ok` (the resource is gone)."""
        return get_json(self._upstream, self._http, url, params=params, gone_ok=missing_ok)

    def _json_array(self, url: str, body: Any) -> list[Any]:
        """A DICOM JSON array; an explicit 404/410 (None) is an empty one. Never guessed from a
        body of another shape: an empty answer here would mean "deleted"."""
        if body is None:
            return []
        if not isinstance(body, list):
            raise TransientUpstreamError(SERVICE, f"{url} did not answer a DICOM JSON array")
        return body

    def _changes_isolating(self, since: int) -> dict[str, Any] | None:
        """`/changes` after `since`; a body that can never be decoded is read again with half the
        limit, down to the one change it belongs to (None: that change, whose Seq is unknown)."""
        limit = self._limit
        while True:
            try:
                return self._changes({"since": str(since), "limit": str(limit)})
            except UnparseableBodyError:
                if limit == 1:
                    return None
                limit = max(1, limit // 2)

    def _changes(self, params: dict[str, str]) -> dict[str, Any]:
        """`/changes` must be an object with a `Changes` array; anything else is a broken answer."""
        body = self._get_json("/changes", params=params)
        if not isinstance(body, dict) or not isinstance(body.get("Changes"), list):
            raise TransientUpstreamError(SERVICE, "/changes did not answer an object with a Changes array")
        return body

    def _entry(self, change: dict[str, Any]) -> ChangeEntry | UnreadableEntry | tuple[ChangeEntry, str]:
        """The change's instance, or what is known of a change that cannot be read (one failure row)."""
        sequence = _sequence(change.get("Seq"))
        resource_id = change.get("ID")
        if sequence is None:
            return UnreadableEntry(UNKNOWN_SEQUENCE, "change Seq is not a whole number in range")
        if not isinstance(resource_id, str) or not _ORTHANC_ID.match(resource_id):
            return UnreadableEntry(sequence, "change ID is not an Orthanc identifier")
        instance = self._get_json(f"/instances/{resource_id}", missing_ok=True)
        if instance is None:
            gone = ChangeEntry(sequence, ChangeAction.CREATE, "", "", "")
            return gone, "instance no longer in Orthanc (deleted after the change)"
        parent = instance.get("ParentSeries") if isinstance(instance, dict) else None
        uids = self._series_uids(parent) if isinstance(parent, str) and _ORTHANC_ID.match(parent) else None
        sop_uid = _tag(instance, "SOPInstanceUID")
        if uids is None or not all(is_uid(uid) for uid in (*uids, sop_uid)):
            study_uid, series_uid = uids or ("", "")
            return UnreadableEntry(
                sequence,
                "instance UIDs are missing or not valid UIDs (digits and dots, at most 64)",
                recordable_uid(study_uid),
                recordable_uid(series_uid),
                recordable_uid(sop_uid),
                action=ChangeAction.CREATE.value,
            )
        return ChangeEntry(
            sequence=sequence,
            action=ChangeAction.CREATE,
            study_uid=uids[0],
            series_uid=uids[1],
            sop_instance_uid=sop_uid,
            timestamp=_orthanc_date(change.get("Date")),
        )

    def _series_uids(self, series_id: str) -> tuple[str, str] | None:
        if series_id not in self._series:
            series = self._get_json(f"/series/{series_id}")
            parent = series.get("ParentStudy") if isinstance(series, dict) else None
            if not isinstance(parent, str) or not _ORTHANC_ID.match(parent):
                return None
            study = self._get_json(f"/studies/{parent}")
            self._series[series_id] = (_tag(study, "StudyInstanceUID"), _tag(series, "SeriesInstanceUID"))
        return self._series[series_id]

    def _attach_metadata(self, entries: list[ChangeEntry]) -> tuple[list[ChangeEntry], list[UnreadableEntry]]:
        """One WADO-RS series metadata request per series of the page, not one per instance. A series
        answer that cannot be decoded (one instance nested too deeply) is read instance by instance."""
        by_series: dict[tuple[str, str], dict[str, DicomJson] | None] = {}
        for entry in entries:
            key = (entry.study_uid, entry.series_uid)
            if key not in by_series:
                by_series[key] = self._series_metadata(*key)
        attached: list[ChangeEntry] = []
        unreadable: list[UnreadableEntry] = []
        for entry in entries:
            series = by_series[(entry.study_uid, entry.series_uid)]
            metadata: DicomJson | _NoMetadata | None
            try:
                metadata = series.get(entry.sop_instance_uid) if series is not None else self.read_metadata(entry)
            except UnparseableBodyError as error:
                metadata = _NoMetadata(_reason(error))
            if isinstance(metadata, _NoMetadata):
                unreadable.append(_unreadable_of(entry, metadata.reason))
            else:
                attached.append(replace(entry, metadata=metadata))
        return attached, unreadable

    def _series_metadata(self, study_uid: str, series_uid: str) -> dict[str, Any] | None:
        """SOP Instance UID -> metadata (a `_NoMetadata` where unusable); None: read each instance."""
        url = f"/dicom-web/studies/{study_uid}/series/{series_uid}/metadata"
        try:
            items = self._json_array(url, self._get_json(url, missing_ok=True))
        except UnparseableBodyError:
            return None
        found: dict[str, Any] = {}
        for item in items:
            if isinstance(item, dict):
                problem = metadata_problem(item)
                found[_sop_uid(item)] = _NoMetadata(problem) if problem else mapped_elements(item)
        return found


class _NoMetadata:
    """An answer that is no usable metadata of its instance."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _reason(error: UnparseableBodyError) -> str:
    """The error's text without the service prefix (it names the problem, never a value)."""
    return str(error).removeprefix(f"{SERVICE}: ")


def _unreadable_of(entry: ChangeEntry, reason: str) -> UnreadableEntry:
    return UnreadableEntry(
        entry.sequence, reason, entry.study_uid, entry.series_uid, entry.sop_instance_uid, action=entry.action.value
    )


def _unknown(reason: str) -> UnreadableEntry:
    return UnreadableEntry(UNKNOWN_SEQUENCE, reason)


def _dicts(items: list[Any]) -> list[dict[str, Any]]:
    return [item for item in items if isinstance(item, dict)]


def _sequence(value: Any) -> int | None:
    """An Orthanc change Seq (a JSON number), or None when it is not a whole number in range."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQUENCE:
        return None
    return value


def _tag(resource: Any, name: str) -> str:
    """A MainDicomTags value of an Orthanc resource ('' when absent or not a string)."""
    main_tags = resource.get("MainDicomTags") if isinstance(resource, dict) else None
    value = main_tags.get(name) if isinstance(main_tags, dict) else None
    return value.strip(" \x00") if isinstance(value, str) else ""


def _sop_uid(item: DicomJson) -> str:
    element = item.get(tags.SOP_INSTANCE_UID)
    values = element.get("Value") if isinstance(element, dict) else None
    first = values[0] if isinstance(values, list) and values else ""
    return first if isinstance(first, str) else ""


def _orthanc_date(value: Any) -> datetime | None:
    """Orthanc writes UTC as `YYYYMMDDTHHMMSS` with no zone designator."""
    try:
        return datetime.strptime(str(value), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
