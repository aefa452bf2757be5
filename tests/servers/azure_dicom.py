"""A loopback stand-in for the Azure DICOM service's change feed and WADO-RS metadata.

    with AzureDicomServer() as server:
        server.store(instance)                        # a create entry
        server.update(study_uid, {"PatientID": "X"})  # bulk update: one update entry per instance
        server.delete_study(study_uid)                # one delete entry per instance
        f"{server.url}/v2"                            # DicomWeb:Endpoint

Routes: `/v{1,2}/changefeed`, `/v{1,2}/changefeed/latest`, `/v{n}/partitions`,
`/v{n}[/partitions/{p}]/studies/{s}/series/{r}/instances/{i}/metadata`, and QIDO-RS with study and
series metadata (azure_dicom_qido.py); anything else is 404
(a bare service URL too). Parameters are checked as the service checks them (400 otherwise).
Keys are camelCase with nulls omitted and enum text PascalCase (`key_case="pascal"`,
`enum_case="lower"` give the documentation's shapes instead).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers import azure_dicom_qido
from tests.servers._base import ListeningServer
from tests.servers.azure_dicom_data import DicomJson, generate_studies, sample_instances, uids
from tests.servers.azure_dicom_feed import DEFAULT_PARTITION, ChangeFeedTable, Row, change_dataset

__all__ = ["AzureDicomServer", "ManualClock", "generate_studies", "sample_instances"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_METADATA = re.compile(
    r"^/v(?P<version>[12])(?:/partitions/(?P<partition>[A-Za-z0-9._-]{1,64}))?"
    r"/studies/(?P<study>[0-9.]+)/series/(?P<series>[0-9.]+)/instances/(?P<sop>[0-9.]+)/metadata$"
)
# DateTimeOffset with a mandatory zone, as the service's binder wants it.
_ZONED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$")
_KEYS = {
    "sequence": "Sequence", "studyInstanceUid": "StudyInstanceUid", "seriesInstanceUid": "SeriesInstanceUid",
    "sopInstanceUid": "SopInstanceUid", "action": "Action", "timestamp": "Timestamp", "state": "State",
    "partitionName": "PartitionName", "metadata": "Metadata",
}  # fmt: skip


class ManualClock:
    """A clock tests move by hand, shared by the server and the source."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Fault:
    status: int  # 0: reset the connection without an answer
    retry_after: str | None
    path_contains: str | None


class BadRequestError(Exception):
    pass


@dataclass(frozen=True)
class RawJson:
    """A body already written as JSON text."""

    text: str


def _raw(value: Any) -> RawJson:
    return RawJson(value if isinstance(value, str) else json.dumps(value))


def _parse_time(text: str) -> int:
    """A zoned ISO time in ticks; 400 when it has no zone."""
    if not _ZONED.match(text):
        raise BadRequestError(f"'{text}' is not a date-time with a time zone")
    fraction = re.search(r"\.(\d+)", text)
    moment = datetime.fromisoformat(re.sub(r"\.\d+", "", text).replace("Z", "+00:00"))
    extra = int((fraction.group(1) if fraction else "").ljust(7, "0"))
    return (moment - _EPOCH) // timedelta(seconds=1) * 10_000_000 + extra


def _format_ticks(ticks: int) -> str:
    """As System.Text.Json writes a DateTimeOffset: offset +00:00, fraction without trailing zeros."""
    moment = _EPOCH + timedelta(microseconds=ticks // 10)
    fraction = f"{moment.microsecond:06d}{ticks % 10}".rstrip("0")
    return f"{moment:%Y-%m-%dT%H:%M:%S}{'.' + fraction if fraction else ''}+00:00"


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int | None) -> int:
    text = query.get(name.lower())
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequestError(f"The field {name} must be a number.") from None
    if value < low or (high is not None and value > high):
        raise BadRequestError(f"The field {name} must be between {low} and {high}.")
    return value


def _bool_param(query: dict[str, str], name: str) -> bool:
    text = query.get(name.lower(), "true").lower()
    if text not in ("true", "false"):
        raise BadRequestError(f"The field {name} must be a boolean.")
    return text == "true"


class AzureDicomServer:
    """The service on 127.0.0.1, a free port, in a thread. See the module docstring."""

    def __init__(
        self,
        *,
        partitions_enabled: bool = False,
        key_case: str = "camel",
        enum_case: str = "pascal",
        token: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.partitions_enabled = partitions_enabled
        self.key_case = key_case
        self.enum_case = enum_case
        self.token = token
        self.table = ChangeFeedTable(clock or (lambda: datetime.now(UTC)))
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, query) of every request
        self.served: list[tuple[str, bool, list[int]]] = []  # (path, includeMetadata, sequences) per feed read
        self.without_metadata: set[str] = set()  # SOP instance UIDs whose entries omit metadata
        self.served_as: dict[int, Callable[[dict[str, Any]], Any]] = {}  # see serve_entry_as
        self.metadata_served_as: dict[str, Callable[[DicomJson], Any]] = {}  # see serve_metadata_as
        self._faults: list[Fault] = []
        self._frozen: dict[tuple[int, bool], RawJson] | None = None  # see freeze
        self._lock = threading.Lock()
        self._http = ListeningServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, name="azure-dicom", daemon=True
        )

    @property
    def url(self) -> str:
        """The service root, without API version."""
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def __enter__(self) -> AzureDicomServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()  # returns within serve_forever's poll interval
        self._http.server_close()
        self._thread.join(timeout=10)

    # ---- the Python API for tests ----

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.table.clock

    @clock.setter
    def clock(self, clock: Callable[[], datetime]) -> None:
        self.table.clock = clock

    def _partition(self, partition: str | None) -> str:
        if partition and partition != DEFAULT_PARTITION and not self.partitions_enabled:
            raise ValueError("data partitions are not enabled on this server")
        return partition or DEFAULT_PARTITION

    def freeze(self) -> None:
        """The feed is complete: each entry's JSON text is written once and served again from then on
        (the benchmark reads one feed many times; writing it again for every read was a third of
        this server's CPU, on the cores the worker and the FHIR server share). Changes now raise."""
        self._frozen = {}

    def _changing(self) -> None:
        if self._frozen is not None:
            raise RuntimeError("the feed was frozen: its entries are served as first written")

    def store(self, instance: DicomJson, partition: str | None = None) -> int:
        """Store (or replace) an instance; returns the create entry's sequence."""
        self._changing()
        return self.table.store(instance, self._partition(partition)).sequence

    def store_all(self, instances: list[DicomJson], partition: str | None = None) -> list[int]:
        return [self.store(instance, partition) for instance in instances]

    def update(self, study_uid: str, changes: dict[str, Any], partition: str | None = None) -> list[int]:
        """Bulk update of patient/study attributes (keywords or tags); one entry per instance."""
        self._changing()
        rows = self.table.update_study(study_uid, change_dataset(changes), self._partition(partition))
        return [row.sequence for row in rows]

    def delete_instance(self, study_uid: str, series_uid: str, sop_uid: str, partition: str | None = None) -> int:
        self._changing()
        key = (self._partition(partition), study_uid, series_uid, sop_uid)
        return self.table.delete([key])[0].sequence

    def delete_series(self, study_uid: str, series_uid: str, partition: str | None = None) -> list[int]:
        self._changing()
        keys = self.table.instances_of(self._partition(partition), study_uid, series_uid)
        return [row.sequence for row in self.table.delete(keys)]

    def delete_study(self, study_uid: str, partition: str | None = None) -> list[int]:
        """One delete entry per instance of the study, as the service writes them."""
        self._changing()
        keys = self.table.instances_of(self._partition(partition), study_uid)
        return [row.sequence for row in self.table.delete(keys)]

    def skip_sequences(self, count: int) -> None:
        """Leave a gap of `count` sequence numbers (a rolled-back insert, an identity-cache jump)."""
        self._changing()
        self.table.skip_sequences(count)

    def fail_next(
        self, count: int = 1, status: int = 503, *, retry_after: str | None = None, path_contains: str | None = None
    ) -> None:
        """Answer the next `count` matching requests with `status` (0: reset the connection)."""
        with self._lock:
            self._faults.extend(Fault(status, retry_after, path_contains) for _ in range(count))

    def serve_entry_as(self, sequence: int, form: Callable[[dict[str, Any]], Any]) -> None:
        """Serve the entry of `sequence` (in feed pages and as `latest`) as `form(entry)` returns it:
        a JSON value, or a `str` sent as raw JSON text (for what json.dumps cannot write, such as
        nesting deeper than Python's own limit). A hostile or broken service, in one entry."""
        self._changing()
        self.served_as[sequence] = form

    def serve_metadata_as(self, sop_instance_uid: str, form: Callable[[DicomJson], Any]) -> None:
        """Serve the instance's WADO-RS metadata as `form(metadata)` returns it (str: raw JSON text)."""
        self.metadata_served_as[sop_instance_uid] = form

    def metadata(self, instance: DicomJson, partition: str | None = None) -> DicomJson | None:
        return self.table.metadata((self._partition(partition), *uids(instance)))

    def sequences_read_with_metadata(self) -> list[int]:
        """Sequences of every entry a change-feed read returned with metadata (what a sync reads)."""
        return [sequence for _, include, sequences in self.served if include for sequence in sequences]

    def feed_requests(self) -> list[dict[str, str]]:
        """The query of every `/changefeed` read (not `latest`), in order."""
        return [query for path, query in self.requests if path.endswith("/changefeed")]

    # ---- HTTP ----

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.path_contains is None or fault.path_contains in path:
                    return self._faults.pop(index)
        return None

    def entry_json(self, row: Row, include_metadata: bool) -> dict[str, Any]:
        def enum(text: str) -> str:
            return text.lower() if self.enum_case == "lower" else text

        entry: dict[str, Any] = {
            "sequence": row.sequence, "partitionName": row.partition, "studyInstanceUid": row.study_uid,
            "seriesInstanceUid": row.series_uid, "sopInstanceUid": row.sop_instance_uid,
            "action": enum(row.action), "timestamp": _format_ticks(row.ticks), "state": enum(row.state),
        }  # fmt: skip
        metadata = self.table.row_metadata(row) if include_metadata else None
        if metadata is not None and row.sop_instance_uid not in self.without_metadata:
            entry["metadata"] = metadata  # omitted, not null, when absent
        if self.key_case == "pascal":
            entry = {_KEYS[key]: value for key, value in entry.items()}
        return entry

    def served_entry(self, row: Row, include_metadata: bool) -> RawJson:
        """The entry's JSON text, as `serve_entry_as` says where a test made it hostile."""
        frozen = self._frozen.get((row.sequence, include_metadata)) if self._frozen is not None else None
        if frozen is not None:
            return frozen
        entry = self.entry_json(row, include_metadata)
        form = self.served_as.get(row.sequence)
        served = _raw(form(entry) if form else entry)
        if self._frozen is not None:
            self._frozen[(row.sequence, include_metadata)] = served
        return served

    def route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        """(status, JSON body or None) for a GET."""
        if match := re.match(r"^/v([12])/changefeed(/latest)?$", path):
            version = int(match.group(1))
            include = _bool_param(query, "includeMetadata")
            if match.group(2):
                latest = self.table.latest(by_time=version > 1)
                return (204, None) if latest is None else (200, self.served_entry(latest, include))
            rows = self._read_v1(query) if version == 1 else self._read_v2(query)
            self.served.append((path, include, [row.sequence for row in rows]))
            return 200, RawJson(f"[{','.join(self.served_entry(row, include).text for row in rows)}]")
        if re.match(r"^/v[12]/partitions$", path):
            if not self.partitions_enabled:
                raise BadRequestError("Data partitions capability is disabled.")
            names = self.table.partitions
            return 200, [{"partitionKey": key, "partitionName": name} for name, key in names.items()]
        if match := _METADATA.match(path):
            return self._metadata(match)
        return azure_dicom_qido.route(self, path, query) or (404, None)

    def _read_v1(self, query: dict[str, str]) -> list[Row]:
        offset = _int_param(query, "offset", 0, 0, None)
        limit = _int_param(query, "limit", 10, 1, 100)
        return self.table.by_sequence(offset, limit)

    def _read_v2(self, query: dict[str, str]) -> list[Row]:
        offset = _int_param(query, "offset", 0, 0, None)
        limit = _int_param(query, "limit", 100, 1, 200)
        start = _parse_time(query["starttime"]) if "starttime" in query else -(10**30)
        end = _parse_time(query["endtime"]) if "endtime" in query else 10**30
        if end <= start:
            raise BadRequestError("The endTime must be after the startTime.")
        return self.table.by_time(start, end, offset, limit)

    def _metadata(self, match: re.Match[str]) -> tuple[int, Any]:
        partition = match["partition"]
        if partition and not self.partitions_enabled:
            raise BadRequestError("Data partitions capability is disabled.")
        if not partition and self.partitions_enabled:
            raise BadRequestError("PartitionName value is missing in the route segment.")
        key = (partition or DEFAULT_PARTITION, match["study"], match["series"], match["sop"])
        metadata = self.table.metadata(key)
        if metadata is None:
            return 404, None
        form = self.metadata_served_as.get(match["sop"])
        return 200, _raw(form(metadata)) if form else [metadata]


def _handler_for(server: AzureDicomServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in separate writes

        def log_message(self, format: str, *args: Any) -> None:  # quiet tests
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {key.lower(): values[-1] for key, values in parse_qs(parts.query).items()}
            server.requests.append((parts.path, query))
            fault = server.take_fault(parts.path)
            if fault and fault.status == 0:
                self.close_connection = True
                self.connection.close()
                return
            if fault:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return self._send(fault.status, {"error": "injected fault"}, headers)
            if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                return self._send(401, None, {"WWW-Authenticate": "Bearer"})
            try:
                status, body = server.route(parts.path, query)
            except BadRequestError as error:
                status, body = 400, {"errors": [str(error)]}
            dicom = parts.path.endswith(("/metadata", "/studies", "/series", "/instances"))
            content = "application/dicom+json" if dicom else "application/json"
            self._send(status, body, {}, content)

        def _send(self, status: int, body: Any, headers: dict[str, str], content: str = "application/json") -> None:
            text = body.text if isinstance(body, RawJson) else json.dumps(body)
            data = b"" if body is None else text.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", content)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
