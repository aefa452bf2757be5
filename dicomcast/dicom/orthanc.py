"""Orthanc as a change source: `/changes` for the feed, the DICOMweb plugin for metadata.

`DicomWeb:Endpoint` is Orthanc's root URL (`http://host:8042`); a trailing `/dicom-web` is accepted
too. Only `NewInstance` changes are synced (the study/series rows follow from them). Orthanc erases
the change rows of deleted resources, so deletions never appear here (see reconciliation).
The cursor is Orthanc's change `Seq`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

from dicomcast.config.settings import DicomWebSettings
from dicomcast.dicom.models import ChangeAction, ChangeEntry, DicomJson, FeedPosition, Page
from dicomcast.errors import ConfigError, TransientUpstreamError
from dicomcast.http import Upstream, get_json
from dicomcast.urls import redact_url, with_path

SERVICE = "Orthanc"
HINT = "DicomWeb:Authentication:BasicCredential:*"
MAX_LIMIT = 1000
SOP_INSTANCE_UID = "00080018"


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
        body = self._changes({"since": str(since), "limit": str(self._limit)})
        changes = body["Changes"]
        entries, skipped = [], []
        for change in changes:
            if change.get("ChangeType") != "NewInstance":
                continue
            entry = self._entry(change)
            if isinstance(entry, ChangeEntry):
                entries.append(entry)
            else:
                skipped.append(entry)
        last = max([since, int(body.get("Last", since))] + [int(c.get("Seq", 0)) for c in changes])
        with_metadata = self._attach_metadata(entries)
        return Page(
            entries=with_metadata, next_cursor=str(last), caught_up=bool(body.get("Done", True)), skipped=skipped
        )

    def read_metadata(self, entry: ChangeEntry) -> DicomJson | None:
        url = f"/dicom-web/studies/{entry.study_uid}/series/{entry.series_uid}/instances/{entry.sop_instance_uid}/metadata"
        items = self._get_json(url, missing_ok=True)
        if items is None:
            return None  # an explicit 404: the instance is gone
        if not isinstance(items, list) or not items or not isinstance(items[0], dict):
            raise TransientUpstreamError(SERVICE, f"{url} did not answer a DICOM JSON array")
        return dict(items[0])

    def present_instances(self, study_uid: str) -> set[str]:
        """SOP Instance UIDs of the study Orthanc holds now (QIDO-RS); empty when the study is gone."""
        url = f"/dicom-web/studies/{study_uid}/instances"
        items = self._json_array(url, self._get_json(url, missing_ok=True))
        return {_sop_uid(item) for item in items if isinstance(item, dict)} - {""}

    def endpoint_address(self, partition: str | None) -> str:
        return self._public_dicomweb

    def dicomweb_json(self, path: str, params: dict[str, str] | None = None, partition: str | None = None) -> Any:
        """A DICOMweb GET (QIDO-RS, WADO-RS metadata) for reconciliation; None when 404 (Orthanc has no partitions)."""
        return self._get_json(f"/dicom-web{path}", params=params, missing_ok=True)

    def partitions_in_use(self) -> list[str | None]:
        return [None]

    def latest(self) -> FeedPosition:
        body = self._changes({"last": ""})
        changes = body["Changes"]
        if not changes:
            return FeedPosition(int(body.get("Last", 0)) or None, None)
        return FeedPosition(int(changes[-1]["Seq"]), _orthanc_date(changes[-1].get("Date")))

    def describe_cursor(self, cursor: str | None) -> str:
        return f"Orthanc change Seq {cursor or 0}"

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

    def _changes(self, params: dict[str, str]) -> dict[str, Any]:
        """`/changes` must be an object with a `Changes` array; anything else is a broken answer."""
        body = self._get_json("/changes", params=params)
        if not isinstance(body, dict) or not isinstance(body.get("Changes"), list):
            raise TransientUpstreamError(SERVICE, "/changes did not answer an object with a Changes array")
        return body

    def _entry(self, change: dict[str, Any]) -> ChangeEntry | tuple[ChangeEntry, str]:
        sequence = int(change["Seq"])
        instance = self._get_json(f"/instances/{change['ID']}", missing_ok=True)
        if instance is None:
            gone = ChangeEntry(sequence, ChangeAction.CREATE, "", "", "")
            return gone, "instance no longer in Orthanc (deleted after the change)"
        study_uid, series_uid = self._series_uids(str(instance["ParentSeries"]))
        return ChangeEntry(
            sequence=sequence,
            action=ChangeAction.CREATE,
            study_uid=study_uid,
            series_uid=series_uid,
            sop_instance_uid=str(instance.get("MainDicomTags", {}).get("SOPInstanceUID", "")),
            timestamp=_orthanc_date(change.get("Date")),
        )

    def _series_uids(self, series_id: str) -> tuple[str, str]:
        if series_id not in self._series:
            series = self._get_json(f"/series/{series_id}")
            study = self._get_json(f"/studies/{series['ParentStudy']}")
            self._series[series_id] = (
                str(study["MainDicomTags"]["StudyInstanceUID"]),
                str(series["MainDicomTags"]["SeriesInstanceUID"]),
            )
        return self._series[series_id]

    def _attach_metadata(self, entries: list[ChangeEntry]) -> list[ChangeEntry]:
        """One WADO-RS series metadata request per series of the page, not one per instance."""
        by_series: dict[tuple[str, str], dict[str, DicomJson]] = {}
        for entry in entries:
            key = (entry.study_uid, entry.series_uid)
            if key not in by_series:
                url = f"/dicom-web/studies/{key[0]}/series/{key[1]}/metadata"
                items = self._json_array(url, self._get_json(url, missing_ok=True))
                by_series[key] = {_sop_uid(item): item for item in items if isinstance(item, dict)}
        return [replace(e, metadata=by_series[(e.study_uid, e.series_uid)].get(e.sop_instance_uid)) for e in entries]


def _sop_uid(item: DicomJson) -> str:
    values = item.get(SOP_INSTANCE_UID, {}).get("Value") or [""]
    return str(values[0])


def _orthanc_date(value: Any) -> datetime | None:
    """Orthanc writes UTC as `YYYYMMDDTHHMMSS` with no zone designator."""
    try:
        return datetime.strptime(str(value), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
