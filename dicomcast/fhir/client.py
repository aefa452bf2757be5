"""FHIR client: capability check, searches, and transactions with If-Match."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from dicomcast.errors import PermanentUpstreamError, ServerNotSupportedError
from dicomcast.fhir.mapping.types import FhirVersion, Resource
from dicomcast.http import send

SERVICE = "FHIR server"
HINT = "Fhir:Authentication:*"
JSON = "application/fhir+json"
MAX_SEARCH_VALUES = 40  # OR-ed identifier values per search request (keeps URLs short)


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


class FhirClient:
    def __init__(self, client: httpx.Client) -> None:
        self.http = client

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {"Accept": JSON, **kwargs.pop("headers", {})}
        request = self.http.build_request(method, url, headers=headers, **kwargs)
        return send(SERVICE, self.http, request, HINT)

    def capabilities(self) -> Capabilities:
        """Read /metadata; refuse servers that are not R4/R5 or have no transactions."""
        body = self._send("GET", "/metadata").json()
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
            for rest in body.get("rest", [])
            for i in rest.get("interaction", [])
            if isinstance(i, dict)
        }
        if "transaction" not in interactions:
            raise ServerNotSupportedError(SERVICE, "its CapabilityStatement declares no 'transaction' interaction")
        return Capabilities(version, fhir_version, True)

    def search(self, resource_type: str, params: dict[str, str]) -> list[Resource]:
        """All matches, following `next` links."""
        found: list[Resource] = []
        response = self._send("GET", f"/{resource_type}", params={**params, "_count": "200"})
        while True:
            bundle = response.json()
            found.extend(
                e["resource"]
                for e in bundle.get("entry", [])
                if e.get("resource", {}).get("resourceType") == resource_type
                and e.get("search", {}).get("mode", "match") == "match"
            )
            next_url = next((link["url"] for link in bundle.get("link", []) if link.get("relation") == "next"), None)
            if not next_url:
                return found
            response = self._send("GET", next_url)

    def search_by_identifiers(self, resource_type: str, tokens: Iterable[str]) -> list[Resource]:
        """Resources whose identifier matches any of `tokens` (`system|value`), in few requests."""
        unique = sorted(set(tokens))
        found: list[Resource] = []
        for start in range(0, len(unique), MAX_SEARCH_VALUES):
            chunk = unique[start : start + MAX_SEARCH_VALUES]
            found.extend(self.search(resource_type, {"identifier": ",".join(_escape(t) for t in chunk)}))
        return found

    def read(self, resource_type: str, resource_id: str) -> Resource | None:
        try:
            return dict(self._send("GET", f"/{resource_type}/{resource_id}").json())
        except PermanentUpstreamError as exc:
            if exc.status in (404, 410):
                return None
            raise

    def put(self, resource: Resource, *, if_match: str | None = None) -> WriteResult:
        headers = {"Content-Type": JSON}
        if if_match:
            headers["If-Match"] = f'W/"{if_match}"'
        url = f"/{resource['resourceType']}/{resource['id']}"
        response = self._send("PUT", url, json=_for_write(resource), headers=headers)
        return WriteResult(
            str(response.status_code), response.headers.get("Location"), _etag(response.headers.get("ETag"))
        )

    def transaction(self, entries: Sequence[dict[str, Any]]) -> list[WriteResult]:
        """POST a transaction bundle; all or nothing on the server's side."""
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}
        response = self._send("POST", "", json=bundle, headers={"Content-Type": JSON})
        results = []
        for entry in response.json().get("entry", []):
            outcome = entry.get("response", {})
            results.append(
                WriteResult(str(outcome.get("status", "")), outcome.get("location"), _etag(outcome.get("etag")))
            )
        if len(results) != len(entries):
            raise PermanentUpstreamError(SERVICE, f"transaction answered {len(results)} entries for {len(entries)}")
        return results


def _escape(token: str) -> str:
    """Search parameter escaping: `,` and `$` in values would split or join tokens."""
    return token.replace("\\", "\\\\").replace(",", "\\,").replace("$", "\\$")


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
