"""The Azure Health Data Services DICOM service (and Medical Imaging Server for DICOM) as a source.

v1 reads `/v1/changefeed?offset=<last sequence>&limit=`: `limit` caps the *sequence* relative to
`offset`, and sequence numbers have gaps, so an empty page only means "caught up" when
`/changefeed/latest` says so; otherwise the empty range is stepped over.

v2 reads `/v2/changefeed?startTime=&endTime=&offset=&limit=`, a time window ordered by
(Timestamp, Sequence). The cursor is that pair (plus how many rows share its timestamp, see
`azure_cursor`): each read starts at the cursor's timestamp (inclusive), past those rows by offset,
and drops anything not after the cursor, so a restart neither skips nor re-reads. The window ends
`safety_lag` before now because a row's Timestamp is set before its commit.

The feed is cross-partition; each entry names its partition. Metadata and viewer links use
`/partitions/{name}` only when the service has data partitions enabled (asked once, `GET /partitions`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from dicomcast.config.settings import DicomWebSettings
from dicomcast.dicom.azure_cursor import advance, parse_sequence_cursor, parse_time_cursor
from dicomcast.dicom.azure_entries import (
    DEFAULT_PARTITION,
    EntryFormatError,
    FeedEntry,
    FeedKey,
    datetime_of,
    lower_keys,
    parse_entry,
    parse_sequence,
    parse_ticks,
    sequence_of,
    ticks_of,
    unreadable_entry,
)
from dicomcast.dicom.azure_handover import AzureCarryOver
from dicomcast.dicom.azure_http import V1_MAX_LIMIT, V2_MAX_LIMIT, parse_service_root, private_root
from dicomcast.dicom.models import (
    UNKNOWN_SEQUENCE,
    ChangeAction,
    ChangeEntry,
    ChangeSource,
    ChangeState,
    CheckpointCarryOver,
    CursorKind,
    DicomJson,
    FeedPosition,
    Page,
    SourceTraits,
    UnreadableEntry,
    mapped_elements,
    metadata_problem,
)
from dicomcast.errors import (
    ConfigError,
    PermanentUpstreamError,
    ServerNotSupportedError,
    TransientUpstreamError,
    UnparseableBodyError,
)
from dicomcast.http import GONE_STATUS, Upstream, json_body, send
from dicomcast.urls import redact_url

DEFAULT_SAFETY_LAG = timedelta(seconds=5)
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_V2_START = "0001-01-01T00:00:00Z"
_V2_START_KEY = FeedKey(parse_ticks(_V2_START), 0)
_DICOM_JSON = "application/dicom+json"
SERVICE = "DICOMweb"

log = structlog.get_logger(__name__)


class AzureChangeFeedSource(ChangeSource):
    """A `ChangeSource` over the Azure DICOM service's change feed, API v1 or v2."""

    def __init__(
        self,
        settings: DicomWebSettings,
        *,
        batch_size: int | None = None,
        auth: httpx.Auth | None = None,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        safety_lag: timedelta = DEFAULT_SAFETY_LAG,
        ignore_parsing_errors: bool = False,
    ) -> None:
        self.public = parse_service_root(settings.endpoint)
        self.root = private_root(settings.private_endpoint, self.public) if settings.private_endpoint else self.public
        self.version = self.public.version
        self.traits = SourceTraits(
            f"Azure change feed v{self.version}",
            self.version,
            partitions=True,
            cursor_kind=CursorKind.SEQUENCE if self.version == 1 else CursorKind.FEED_POSITION,
        )
        # Names and FHIR addresses never hold credentials (urls.redact_url); requests use the URL as given.
        self.name = f"azure:{redact_url(self.public.url)}"
        setting = "DicomWeb:PrivateEndpoint" if settings.private_endpoint else "DicomWeb:Endpoint"
        self._upstream = Upstream(SERVICE, setting, "DicomWeb:Authentication:*")
        if self.public.versionless:
            log.warning(
                "DicomWeb:Endpoint has no API version: reading change feed v1, as DICOM Cast did. "
                "v2 is recommended (it has update actions): set it to <service URL>/v2; the v1 "
                "checkpoint is carried over on the first v2 start (README, Checkpoints)",
                endpoint=redact_url(self.public.url),
            )
        max_limit = V1_MAX_LIMIT if self.version == 1 else V2_MAX_LIMIT
        self.limit = min(batch_size or max_limit, max_limit)
        self.partitions = {name.lower() for name in settings.partitions}
        self._client = client or httpx.Client(
            auth=auth, transport=transport, timeout=DEFAULT_TIMEOUT, follow_redirects=False
        )
        self._clock = clock
        self._safety_lag = safety_lag
        self._ignore_parsing_errors = ignore_parsing_errors
        self._partitions_enabled: bool | None = None

    # ---- ChangeSource ----------------------------------------------------------------------

    def read_page(self, cursor: str | None) -> Page:
        if self.version == 1:
            return self._read_page_v1(cursor)
        return self._read_page_v2(cursor)

    def read_metadata(self, entry: ChangeEntry) -> DicomJson | None:
        """Raises `_MetadataUnreadableError` (permanent, for this entry) when the answer is no metadata."""
        url = (
            f"{self.root.partition_url(entry.partition)}/studies/{entry.study_uid}"
            f"/series/{entry.series_uid}/instances/{entry.sop_instance_uid}/metadata"
        )
        response = self._get(url, {}, accept=_DICOM_JSON, allow=GONE_STATUS)
        if response.status_code in GONE_STATUS:
            return None  # only an explicit 404/410 means the instance is gone
        try:
            body = json_body(self._upstream, response)
        except UnparseableBodyError:
            raise _MetadataUnreadableError("the instance's metadata cannot be decoded (nested too deeply)") from None
        # Valid JSON of the wrong shape is this instance's problem: its entry fails, not the source.
        metadata = body[0] if isinstance(body, list) and len(body) == 1 else body
        if not isinstance(metadata, dict) or not metadata:
            raise _MetadataUnreadableError("the instance's metadata is not one DICOM JSON object")
        problem = metadata_problem(metadata)
        if problem:
            raise _MetadataUnreadableError(problem)
        return mapped_elements(metadata)

    def endpoint_address(self, partition: str | None) -> str:
        return redact_url(self.public.partition_url(partition))

    def dicomweb_json(self, path: str, params: dict[str, str] | None = None, partition: str | None = None) -> Any:
        """A DICOMweb GET for reconciliation: None for an explicit 404/410; a QIDO-RS search's 204
        (documented: nothing matches) is an empty array; any other empty answer is transient."""
        url = f"{self.root.partition_url(partition)}{path}"
        response = self._get(url, params or {}, accept=_DICOM_JSON, allow=GONE_STATUS)
        if response.status_code in GONE_STATUS:
            return None
        if response.status_code == 204 and not path.endswith("/metadata"):
            return []
        return json_body(self._upstream, response)

    def partitions_in_use(self) -> list[str | None]:
        """The data partitions to reconcile (DicomWeb:Partitions when set), or [None] without partitions."""
        if not self._partitions_on():
            return [None]
        body = json_body(self._upstream, self._get(f"{self.root.url}/partitions", {}))
        names = [str(lower_keys(p).get("partitionname")) for p in body or [] if isinstance(p, dict)]
        return [n for n in names if n != "None" and (not self.partitions or n.lower() in self.partitions)]

    def latest(self) -> FeedPosition:
        """The newest entry's position; what cannot be read of it is None (the feed is then read
        until an empty page, never skipped)."""
        response = self._feed_get("/changefeed/latest", {"includeMetadata": "false"})
        if response.status_code == 204:
            # The service's answer for an empty feed (no latest entry). The one 204 read as "nothing":
            # `latest` only bounds reads, it never moves the cursor by itself.
            return FeedPosition(None, None)
        try:
            body = json_body(self._upstream, response)
        except UnparseableBodyError:
            log.warning("change_feed_latest_undecodable", source=self.name)
            return FeedPosition(None, None)
        if not isinstance(body, dict):
            raise TransientUpstreamError(SERVICE, f"{self.root.url}/changefeed/latest did not answer an object")
        stamp = lower_keys(body).get("timestamp")
        try:
            moment = datetime_of(parse_ticks(stamp)) if isinstance(stamp, str) else None
        except EntryFormatError:
            moment = None
        return FeedPosition(_raw_sequence(body) or None, moment)

    def describe_cursor(self, cursor: str | None) -> str:
        if not cursor:
            return "the start of the feed"
        if self.version == 1:
            return f"sequence {parse_sequence_cursor(cursor)}"
        return parse_time_cursor(cursor).describe()

    def cursor_sequence(self, cursor: str | None) -> int | None:
        try:
            return parse_sequence_cursor(cursor) if self.version == 1 else parse_time_cursor(cursor or "").key.sequence
        except ConfigError:  # not this feed's cursor (set by hand): no figure rather than a wrong one
            return None

    def deletion_check(self) -> None:
        return None  # the feed reports deletions (action `delete`)

    def dicomweb(self) -> AzureChangeFeedSource:
        return self  # the service's DICOMweb API, partitions included

    def carry_over(self) -> CheckpointCarryOver:
        return AzureCarryOver(self)

    def feed_json(self, version: int, path: str, params: dict[str, str]) -> Any:
        """A change-feed answer without metadata from `/v{version}{path}` of this service (v1 and v2
        are served side by side; the carry-over between them reads both). None for `latest` of an
        empty feed (204); the caller checks the shape."""
        root = self.root.with_version(version).url
        response = self._get(f"{root}{path}", {**params, "includeMetadata": "false"}, allow=(204, 404))
        if response.status_code == 404:
            raise ServerNotSupportedError(SERVICE, f"{redact_url(root)}{path} answered 404", status=404)
        if response.status_code == 204 and path.endswith("/latest"):
            return None
        return json_body(self._upstream, response)

    def close(self) -> None:
        """Closes its client, the one given too (sources.py makes one per source): its pooled
        connections would otherwise stay open until garbage collection."""
        self._client.close()

    # ---- v1: sequence offsets ----------------------------------------------------------------

    def _read_page_v1(self, cursor: str | None) -> Page:
        offset = parse_sequence_cursor(cursor)
        # Read `latest` first: a range found empty *after* it was known is a real gap, not a race.
        latest = self.latest().sequence or 0
        rows, limit = self._rows({"offset": str(offset)}, self.limit, single_sequence=offset + 1)
        rows = [_Misplaced(row) if _outside(row, offset, limit) else row for row in rows]
        parsed, unreadable = self._parse_rows(rows)
        if rows:
            last = max(offset + 1, *(_raw_sequence(row) for row in rows))
            return self._page(parsed, unreadable, str(last), caught_up=last >= latest)
        if offset < latest:  # a gap in the sequence: nothing in (offset, offset + limit]
            return Page(entries=(), next_cursor=str(offset + limit), caught_up=False)
        return Page(entries=(), next_cursor=str(offset), caught_up=True)

    # ---- v2: time windows ------------------------------------------------------------------

    def _read_page_v2(self, cursor: str | None) -> Page:
        after = parse_time_cursor(cursor) if cursor else None
        end_ticks = ticks_of(self._clock() - self._safety_lag)
        if after and end_ticks <= after.key.ticks:  # the window is empty (and the service would say 400)
            return Page(entries=(), next_cursor=str(cursor), caught_up=True)
        window = {
            "startTime": after.key.timestamp if after else _V2_START,
            "endTime": FeedKey(end_ticks, 0).timestamp,
        }
        offset = after.rows_at_timestamp if after else 0
        while True:  # skip rows at the cursor's own timestamp that were read already
            rows, limit = self._rows({**window, "offset": str(offset)}, self.limit)
            keys = [_raw_key(row) for row in rows]
            readable = [key for key in keys if key is not None]
            if len(rows) < limit or after is None or len(readable) < len(keys) or max(readable) > after.key:
                break
            offset += len(rows)
        caught_up = len(rows) < limit
        moved = advance(after, offset, keys, start=_V2_START_KEY)
        if moved is None:
            return Page(entries=(), next_cursor=cursor or "", caught_up=caught_up)
        parsed, unreadable = self._parse_rows(rows)
        fresh = [row for row in parsed if after is None or row.key > after.key]
        return self._page(fresh, unreadable, str(moved), caught_up=caught_up)

    # ---- entries ---------------------------------------------------------------------------

    def _changefeed(self, params: dict[str, str], include_metadata: bool = True) -> list[Any]:
        include = "true" if include_metadata else "false"
        body = json_body(self._upstream, self._feed_get("/changefeed", {**params, "includeMetadata": include}))
        if not isinstance(body, list):
            raise TransientUpstreamError(SERVICE, f"{redact_url(self.root.url)}/changefeed did not answer a JSON array")
        return body

    def _rows(self, params: dict[str, str], limit: int, single_sequence: int | None = None) -> tuple[list[Any], int]:
        """(rows, the limit they were read with). A body that can never be decoded (an entry nested
        too deeply) is read again with half the limit, down to the one entry it belongs to, which
        becomes an `_Undecodable` row: the source moves past it instead of failing every cycle."""
        while True:
            try:
                return self._changefeed({**params, "limit": str(limit)}), limit
            except UnparseableBodyError:
                if limit > 1:
                    limit = max(1, limit // 2)
                    continue
            log.warning("change_feed_entry_undecodable", source=self.name, params=_safe_params(params))
            return [self._undecodable(params, single_sequence)], 1

    def _undecodable(self, params: dict[str, str], sequence: int | None) -> _Undecodable:
        """The entry without its metadata, where that alone decodes: its sequence and UIDs are then known."""
        try:
            rows = self._changefeed({**params, "limit": "1"}, include_metadata=False)
        except UnparseableBodyError:
            rows = []
        return _Undecodable(rows[0] if len(rows) == 1 else None, sequence)

    def _parse_rows(self, rows: Sequence[Any]) -> tuple[list[FeedEntry], list[UnreadableEntry]]:
        parsed: list[FeedEntry] = []
        unreadable: list[UnreadableEntry] = []
        for row in rows:
            one = self._parse_one(row)
            if isinstance(one, FeedEntry):
                parsed.append(one)
            elif one is not None:
                unreadable.append(one)
        return parsed, unreadable

    def _parse_one(self, row: Any) -> FeedEntry | UnreadableEntry | None:
        """A parsed row, or what is known of an unreadable one (None when told to ignore those)."""
        if isinstance(row, _Undecodable | _Misplaced):
            failed = row.unreadable()
        else:
            try:
                return parse_entry(row)
            except EntryFormatError as error:
                failed = unreadable_entry(row, str(error))
        if self._ignore_parsing_errors:  # DICOM Cast's switch: logged only, no failure row
            log.warning("change_feed_entry_unreadable", where=failed.describe(), reason=failed.reason)
            return None
        return failed

    def _page(
        self, parsed: Sequence[FeedEntry], unreadable: Sequence[UnreadableEntry], next_cursor: str, *, caught_up: bool
    ) -> Page:
        entries: list[ChangeEntry] = []
        skipped: list[tuple[ChangeEntry, str]] = []
        failed = list(unreadable)
        partitioned = self._partitions_on() if parsed else False
        for row in parsed:
            entry = self._addressed(row, partitioned)
            reason = self._skip_reason(row, entry)
            if reason is None and entry.metadata is None and entry.action is not ChangeAction.DELETE:
                try:
                    entry = self._with_metadata(entry)
                except _MetadataUnreadableError as error:
                    failed.append(_unreadable_of(entry, error.reason))
                    continue
                reason = None if entry.metadata is not None else "instance no longer exists"
            if reason is None:
                entries.append(entry)
            else:
                skipped.append((entry, reason))
        return Page(entries=entries, next_cursor=next_cursor, caught_up=caught_up, skipped=skipped, unreadable=failed)

    def _addressed(self, row: FeedEntry, partitioned: bool) -> ChangeEntry:
        """Without data partitions, `Microsoft.Default` is no URL segment: the entry has no partition."""
        entry = row.entry
        if partitioned:
            return entry if entry.partition else _replace(entry, partition=DEFAULT_PARTITION)
        return _replace(entry, partition=None) if entry.partition else entry

    def _skip_reason(self, row: FeedEntry, entry: ChangeEntry) -> str | None:
        name = (row.partition_name or DEFAULT_PARTITION).lower()
        if self.partitions and name not in self.partitions:
            return f"partition {row.partition_name or DEFAULT_PARTITION} is not in DicomWeb:Partitions"
        if entry.action is not ChangeAction.DELETE and entry.state is ChangeState.DELETED:
            return f"{entry.action.value} of an instance deleted since (its delete entry follows)"
        return None

    def _with_metadata(self, entry: ChangeEntry) -> ChangeEntry:
        return _replace(entry, metadata=self.read_metadata(entry))

    def _partitions_on(self) -> bool:
        """Whether the service has data partitions: `GET /partitions` is 400 when they are off."""
        if self._partitions_enabled is None:
            response = self._get(f"{self.root.url}/partitions", {}, allow=(400, 404, 405))
            self._partitions_enabled = response.status_code in (200, 204)
        return self._partitions_enabled

    # ---- HTTP ------------------------------------------------------------------------------

    def _feed_get(self, path: str, params: dict[str, str]) -> httpx.Response:
        """A change-feed GET; 404 means the URL or its API version is wrong, not a missing entry."""
        response = self._get(f"{self.root.url}{path}", params, allow=(404,))
        if response.status_code == 404:
            raise ServerNotSupportedError(
                SERVICE,
                f"{redact_url(self.root.url)}{path} answered 404: {self._upstream.setting} "
                "must be the DICOM service URL with its API version, e.g. https://<service>/v2",
                status=404,
            )
        return response

    def _get(
        self, url: str, params: dict[str, str], *, accept: str = "application/json", allow: Collection[int] = ()
    ) -> httpx.Response:
        request = self._client.build_request("GET", url, params=params, headers={"Accept": accept})
        return send(self._upstream, self._client, request, allow=allow)


def _replace(entry: ChangeEntry, **changes: Any) -> ChangeEntry:
    # As dataclasses.replace, without its look at the fields each time (every entry of a page
    # without data partitions comes here: 2.4 us, now 1.2). ChangeEntry's fields are all init fields.
    return ChangeEntry(**{**vars(entry), **changes})


class _MetadataUnreadableError(PermanentUpstreamError):
    """One instance's metadata answer that can never be read: a failure of that entry alone."""

    def __init__(self, message: str) -> None:
        super().__init__("DICOMweb", message)
        self.reason = message


@dataclass(frozen=True)
class _Undecodable:
    """The one entry of a feed body that cannot be decoded; `row` is it read without metadata, if
    that decodes; `sequence` is its sequence where the request alone tells it (v1, limit 1)."""

    row: Any
    sequence: int | None

    def unreadable(self) -> UnreadableEntry:
        reason = "the change-feed entry cannot be decoded (JSON nested too deeply or numbers too long)"
        if self.row is not None:
            return unreadable_entry(self.row, reason)
        return UnreadableEntry(self.sequence or UNKNOWN_SEQUENCE, reason)


@dataclass(frozen=True)
class _Misplaced:
    """A v1 row whose sequence lies outside the range asked for, (offset, offset + limit]. The service
    never sends one; trusting its sequence could move the cursor past entries never read, so it
    is an unreadable entry that cannot move the cursor (its UIDs are recorded for a replay)."""

    row: Any

    def unreadable(self) -> UnreadableEntry:
        failed = unreadable_entry(self.row, "the change-feed entry's sequence is outside the range asked for")
        return dataclasses.replace(failed, sequence=UNKNOWN_SEQUENCE)


def _outside(row: Any, offset: int, limit: int) -> bool:
    if isinstance(row, _Undecodable):
        return False
    try:
        sequence = parse_sequence(row)
    except EntryFormatError:
        return False  # reported as unreadable when parsed
    return not offset < sequence <= offset + limit


def _unreadable_of(entry: ChangeEntry, reason: str) -> UnreadableEntry:
    return UnreadableEntry(
        entry.sequence,
        reason,
        entry.study_uid,
        entry.series_uid,
        entry.sop_instance_uid,
        entry.partition,
        entry.action.value,
    )


def _safe_params(params: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in params.items() if key in ("offset", "startTime", "endTime")}


def _raw_key(row: Any) -> FeedKey | None:
    """A row's feed position without parsing the rest of it; None when unreadable."""
    if isinstance(row, _Undecodable):
        row = row.row
    fields = lower_keys(row) if isinstance(row, dict) else {}
    try:
        return FeedKey(parse_ticks(str(fields.get("timestamp"))), sequence_of(fields))
    except EntryFormatError:
        return None


def _raw_sequence(row: Any) -> int:
    if isinstance(row, _Misplaced):
        return 0  # its sequence is not believed
    if isinstance(row, _Undecodable):
        if row.sequence is not None:
            return row.sequence
        row = row.row
    try:
        return parse_sequence(row)
    except EntryFormatError:
        return 0  # an unreadable entry without a sequence cannot move the cursor
