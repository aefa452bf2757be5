"""FHIR client: capability check, searches, and transactions with If-Match."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass
from typing import Any

import httpx

from dicomcast.errors import PermanentUpstreamError, ServerNotSupportedError, TransientUpstreamError
from dicomcast.fhir.mapping.types import FhirVersion, Resource
from dicomcast.http import GONE_STATUS, Upstream, json_body, send, where
from dicomcast.logs import get_logger
from dicomcast.urls import origin, rebase

SERVICE = "FHIR server"
HINT = "Fhir:Authentication:*"
UPSTREAM = Upstream(SERVICE, "Fhir:Endpoint", HINT)
JSON = "application/fhir+json"
log = get_logger("dicomcast.fhir")
MAX_SEARCH_VALUES = 40  # OR-ed identifier values per GET search (keeps URLs short)
MAX_POSTED_SEARCH_VALUES = 200  # per POST [type]/_search (FHIR search.html#Introduction), beyond that


@dataclass(frozen=True)
class Capabilities:
    version: FhirVersion
    fhir_version: str
    transactions: bool


@dataclass(frozen=True)
class WriteResult:
    """Per entry of a transaction: status line and the new version (from the etag)."""

    status: str
    location: str | None
    version_id: str | None


@dataclass(frozen=True)
class EncodedEntries:
    """Transaction entries serialized once: their size decides which bundle they join, and the
    bytes are sent as they are (worker/bundles.py)."""

    body: bytes  # the entries' JSON, comma-separated
    count: int


# One encoder for every body: json.dumps with options builds a new one at each call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_entries(entries: Sequence[dict[str, Any]]) -> EncodedEntries:
    """The entries as a JSON array without its brackets: comma-separated, in one encoding."""
    return EncodedEntries(_dumps(list(entries))[1:-1], len(entries))


def _dumps(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


class FhirClient:
    def __init__(self, client: httpx.Client, *, searches_at_once: int = 1) -> None:
        self.http = client
        self.searches_at_once = max(1, searches_at_once)  # the POSTed chunks of one identifier search
        self._warned_origin = False

    def _send(self, method: str, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        headers = {"Accept": JSON, **kwargs.pop("headers", {})}
        allow = kwargs.pop("allow", ())
        request = self.http.build_request(method, url, headers=headers, **kwargs)
        return send(UPSTREAM, self.http, request, allow=allow)

    def _resource(self, response: httpx.Response, resource_type: str) -> dict[str, Any]:
        """The body as a resource of `resource_type`; anything else (an HTML page, a cut-off body,
        another resource) is transient: something between dicomcast and the server answered."""
        body = json_body(UPSTREAM, response)
        if not isinstance(body, dict) or body.get("resourceType") != resource_type:
            raise TransientUpstreamError(
                SERVICE, f"{where(response.request)} did not answer a {resource_type}", status=response.status_code
            )
        return body

    def capabilities(self) -> Capabilities:
        """Read /metadata; refuse servers that are not R4/R5 or have no transactions."""
        body = self._resource(self._send("GET", "/metadata"), "CapabilityStatement")
        fhir_version = str(body.get("fhirVersion", ""))
        if fhir_version.startswith("4.0"):
            version = FhirVersion.R4
        elif fhir_version.startswith("5."):
            version = FhirVersion.R5
        else:
            raise ServerNotSupportedError(
                SERVICE,
                f"fhirVersion {fhir_version or 'missing'}; dicomcast writes FHIR R4 (4.0.x) or R5 (5.x)",
            )
        interactions = {
            str(i.get("code"))
            for rest in _list(body.get("rest"))
            if isinstance(rest, dict)
            for i in _list(rest.get("interaction"))
            if isinstance(i, dict)
        }
        if "transaction" not in interactions:
            raise ServerNotSupportedError(SERVICE, "its CapabilityStatement declares no 'transaction' interaction")
        return Capabilities(version, fhir_version, True)

    def search(self, resource_type: str, params: dict[str, str]) -> list[Resource]:
        """All matches, following `next` links, which are first moved onto Fhir:Endpoint's origin:
        a server (or a proxy) naming another host or scheme never gets the token."""
        return self._all_pages(
            self._send("GET", f"/{resource_type}", params={**params, "_count": "200"}), resource_type
        )

    def _all_pages(self, response: httpx.Response, resource_type: str) -> list[Resource]:
        found: list[Resource] = []
        while True:
            bundle = self._resource(response, "Bundle")
            found.extend(
                e["resource"]
                for e in _list(bundle.get("entry"))
                if isinstance(e, dict)
                and isinstance(e.get("resource"), dict)
                and e["resource"].get("resourceType") == resource_type
                and (e.get("search") or {}).get("mode", "match") == "match"
            )
            next_url = _next_link(bundle)
            if not next_url:
                return found
            response = self._send("GET", self._on_our_origin(next_url))

    def _on_our_origin(self, link: str) -> httpx.URL:
        try:
            given = httpx.URL(link)
        except httpx.InvalidURL:
            raise TransientUpstreamError(SERVICE, "a search answered a next link that is not a URL") from None
        if given.is_relative_url and not link.startswith("/"):
            return self.http.base_url.join(link)  # relative to the service base (FHIR http.html)
        rebased = rebase(link, self.http.base_url)
        if not given.is_relative_url and origin(given) != origin(self.http.base_url) and not self._warned_origin:
            self._warned_origin = True  # once per process: a misconfigured server base URL, not an event
            log.warning(
                "FHIR next link names another origin; followed on Fhir:Endpoint's origin instead",
                named=f"{given.scheme}://{given.host}" + (f":{given.port}" if given.port else ""),
            )
        return rebased

    def search_by_identifiers(self, resource_type: str, tokens: Iterable[str]) -> list[Resource]:
        """Resources whose identifier matches any of `tokens` (`system|value`, escaped by
        `mapping.ids.identifier_token`), in few requests."""
        unique = sorted(set(tokens))
        if len(unique) <= MAX_SEARCH_VALUES:
            return self.search(resource_type, {"identifier": ",".join(unique)}) if unique else []
        chunks = [unique[i : i + MAX_POSTED_SEARCH_VALUES] for i in range(0, len(unique), MAX_POSTED_SEARCH_VALUES)]

        def posted(chunk: list[str]) -> list[Resource]:
            form = {"identifier": ",".join(chunk), "_count": str(2 * MAX_POSTED_SEARCH_VALUES)}
            return self._all_pages(self._send("POST", f"/{resource_type}/_search", data=form), resource_type)

        # A batch's lookups are a few POSTs: at a cloud server's round-trip time, one after the other
        # they were most of a batch of one-instance studies.
        with ThreadPoolExecutor(min(len(chunks), self.searches_at_once), thread_name_prefix="search") as pool:
            answers = list(pool.map(lambda chunk: copy_context().run(posted, chunk), chunks))
        return [resource for answer in answers for resource in answer]

    def read(self, resource_type: str, resource_id: str) -> Resource | None:
        response = self._send("GET", f"/{resource_type}/{resource_id}", allow=GONE_STATUS)
        if response.status_code in GONE_STATUS:
            return None
        return self._resource(response, resource_type)

    def put(self, resource: Resource, *, if_match: str | None = None) -> WriteResult:
        headers = {"Content-Type": JSON}
        if if_match:
            headers["If-Match"] = f'W/"{if_match}"'
        url = f"/{resource['resourceType']}/{resource['id']}"
        response = self._send("PUT", url, json=_for_write(resource), headers=headers)
        if not response.headers.get("ETag"):  # without a version, only the resource itself proves the write
            self._resource(response, str(resource["resourceType"]))
        return WriteResult(
            str(response.status_code), response.headers.get("Location"), _etag(response.headers.get("ETag"))
        )

    def transaction(self, entries: Sequence[dict[str, Any]]) -> list[WriteResult]:
        """POST a transaction bundle; all or nothing on the server's side."""
        return self.transaction_of([encode_entries(entries)])

    def transaction_of(self, parts: Sequence[EncodedEntries]) -> list[WriteResult]:
        """One transaction bundle holding every part's entries, in order (one WriteResult each)."""
        body = b'{"resourceType":"Bundle","type":"transaction","entry":[' + b",".join(p.body for p in parts if p.count)
        response = self._send("POST", "", content=body + b"]}", headers={"Content-Type": JSON})
        answer = self._resource(response, "Bundle")
        results = []
        for entry in _list(answer.get("entry")):
            outcome = entry.get("response") if isinstance(entry, dict) else None
            if not isinstance(outcome, dict):
                outcome = {}
            results.append(
                WriteResult(str(outcome.get("status", "")), outcome.get("location"), _etag(outcome.get("etag")))
            )
        sent = sum(p.count for p in parts)
        if len(results) != sent:
            raise PermanentUpstreamError(SERVICE, f"transaction answered {len(results)} entries for {sent}")
        return results


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in _list(bundle.get("link")):
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


def _etag(value: str | None) -> str | None:
    if not value:
        return None
    return value.removeprefix("W/").strip('"')


def _for_write(resource: Resource) -> Resource:
    """The body to send: server-managed meta (versionId, lastUpdated) removed, meta.source kept."""
    body = dict(resource)
    meta = {k: v for k, v in body.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        body["meta"] = meta
    else:
        body.pop("meta", None)
    return body


def put_entry(resource: Resource, *, if_match: str | None) -> dict[str, Any]:
    """A transaction entry that upserts `resource` at its id (If-Match when it existed)."""
    request: dict[str, Any] = {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
    if if_match:
        request["ifMatch"] = f'W/"{if_match}"'
    return {
        "fullUrl": f"{resource['resourceType']}/{resource['id']}",
        "resource": _for_write(resource),
        "request": request,
    }


def delete_entry(resource_type: str, resource_id: str) -> dict[str, Any]:
    return {"request": {"method": "DELETE", "url": f"{resource_type}/{resource_id}"}}
