"""In-process doubles for the worker core: a change source, a FHIR server behind httpx.MockTransport,
an in-memory store. No sockets, no sleeps: tests step the worker with hooks, not with time."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool

from dicomcast.dicom.models import (
    ChangeEntry,
    CursorKind,
    DicomJson,
    FeedPosition,
    Page,
    SourceTraits,
    UnreadableEntry,
)
from dicomcast.fhir.client import FhirClient
from dicomcast.fhir.mapping.types import MappingOptions
from dicomcast.store import Store, migrate
from dicomcast.worker.context import SyncContext, Tuning
from tests.unit.mapping.builders import entry, instance

Hook = Callable[[dict[str, Any]], None]
FAKE_TRAITS = SourceTraits("fake feed", None, partitions=False, cursor_kind=CursorKind.SEQUENCE)


@dataclass
class FakeSource:
    """A feed of fixed pages; the cursor is the number of pages read, as text."""

    pages: list[list[ChangeEntry]]
    name: str = "fake:feed"
    traits: SourceTraits = FAKE_TRAITS
    unreadable: dict[int, list[UnreadableEntry]] = field(default_factory=dict)  # page index -> entries
    reads: list[str | None] = field(default_factory=list)

    def read_page(self, cursor: str | None) -> Page:
        self.reads.append(cursor)
        index = int(cursor or 0)
        entries = self.pages[index] if index < len(self.pages) else []
        done = index >= len(self.pages) - 1
        return Page(entries, str(min(index + 1, len(self.pages))), done, unreadable=self.unreadable.get(index, ()))

    def read_metadata(self, change: ChangeEntry) -> DicomJson | None:
        return change.metadata

    def endpoint_address(self, partition: str | None) -> str:
        return "http://dicom.test/dicom-web"

    def latest(self) -> FeedPosition:
        return FeedPosition(None, None)

    def describe_cursor(self, cursor: str | None) -> str:
        return f"page {cursor}"

    def cursor_sequence(self, cursor: str | None) -> int | None:
        return int(cursor) if cursor else None

    def deletion_check(self) -> None:
        return None

    def carry_over(self) -> None:
        return None

    def dicomweb(self) -> None:
        return None

    def close(self) -> None:
        pass


class FakeFhir:
    """A FHIR server in a dict: read, identifier search, PUT and transaction. `on_transaction` hooks
    run inside the server as a transaction arrives (in the worker's study thread)."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}
        self.transactions: list[dict[str, Any]] = []
        self.on_transaction: list[Hook] = []
        self.refuse_study: set[str] = set()  # study UIDs whose transactions get 422
        self.conflict_once: set[str] = set()  # study UIDs whose next transaction gets 412
        self.lock = threading.Lock()

    def client(self) -> FhirClient:
        return FhirClient(httpx.Client(base_url="http://fhir.test", transport=httpx.MockTransport(self.handle)))

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.strip("/")
        if request.method == "POST" and path == "":
            return self._transaction(json.loads(request.content))
        if request.method == "POST" and path.endswith("/_search"):  # a form body
            return _json(200, self._search(path.split("/")[0], parse_qs(request.content.decode())))
        if request.method == "PUT":
            with self.lock:
                return _json(201, self._put(json.loads(request.content)), etag=True)
        if "/" in path:
            found = self.resources.get(path)
            return _json(200, found, etag=True) if found else _json(404, {"resourceType": "OperationOutcome"})
        return _json(200, self._search(path, parse_qs(request.url.query.decode())))

    def _transaction(self, bundle: dict[str, Any]) -> httpx.Response:
        for hook in list(self.on_transaction):
            hook(bundle)
        if any(study_uid_in(e) in self.refuse_study for e in bundle["entry"]):
            return _json(422, {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]})
        conflicting = {study_uid_in(e) for e in bundle["entry"]} & self.conflict_once
        if conflicting:
            self.conflict_once -= conflicting
            return _json(412, {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]})
        with self.lock:
            self.transactions.append(bundle)
            answers = [self._apply(e) for e in bundle["entry"]]
        return _json(200, {"resourceType": "Bundle", "type": "transaction-response", "entry": answers})

    def _apply(self, item: dict[str, Any]) -> dict[str, Any]:
        if item["request"]["method"] == "DELETE":
            self.resources.pop(item["request"]["url"], None)
            return {"response": {"status": "204 No Content"}}
        written = self._put(item["resource"])
        return {"response": {"status": "200 OK", "etag": f'W/"{written["meta"]["versionId"]}"'}}

    def _put(self, resource: dict[str, Any]) -> dict[str, Any]:
        key = f"{resource['resourceType']}/{resource['id']}"
        version = int(self.resources.get(key, {}).get("meta", {}).get("versionId", "0")) + 1
        stored = {**resource, "meta": {**resource.get("meta", {}), "versionId": str(version)}}
        self.resources[key] = stored
        return stored

    def _search(self, resource_type: str, params: dict[str, list[str]]) -> dict[str, Any]:
        tokens = {t for v in params.get("identifier", []) for t in v.split(",")}
        with self.lock:
            hits = [
                r
                for key, r in self.resources.items()
                if key.startswith(f"{resource_type}/")
                and any(f"{i.get('system', '')}|{i.get('value', '')}" in tokens for i in r.get("identifier", []))
            ]
        return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in hits]}

    def studies_written(self) -> list[str]:
        """The study UID of each ImagingStudy write, in the order the transactions arrived."""
        return [uid for bundle in self.transactions for uid in map(study_uid_in, bundle["entry"]) if uid]


def study_uid_in(item: dict[str, Any]) -> str | None:
    resource = item.get("resource") or {}
    if resource.get("resourceType") != "ImagingStudy":
        return None
    for identifier in resource.get("identifier", []):
        if str(identifier.get("value", "")).startswith("urn:oid:"):
            return str(identifier["value"]).removeprefix("urn:oid:")
    return None


def _json(status: int, body: dict[str, Any], *, etag: bool = False) -> httpx.Response:
    headers = {"ETag": f'W/"{body["meta"]["versionId"]}"'} if etag and "meta" in body else {}
    return httpx.Response(status, json=body, headers={**headers, "Content-Type": "application/fhir+json"})


def memory_store() -> Store:
    """A migrated store in one in-memory SQLite connection shared by every thread."""
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    migrate(engine)
    return Store(engine)


def study_entries(study: str, sequences: Sequence[int], *, patient_id: str = "PAT-1") -> list[ChangeEntry]:
    """Create entries for instances of `study` (one series), one per sequence number."""
    return [entry(n, instance(1, n, study=study, patient_id=patient_id)) for n in sequences]


def make_context(source: FakeSource, fhir: FakeFhir, store: Store, **tuning: Any) -> SyncContext:
    return SyncContext(
        source=source, fhir=fhir.client(), store=store, options=MappingOptions(), tuning=Tuning(**tuning)
    )
