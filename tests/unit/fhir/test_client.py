"""The FHIR client's start-up check and error translation (httpx.MockTransport)."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from dicomcast.errors import (
    AuthError,
    ConflictError,
    PermanentUpstreamError,
    ServerNotSupportedError,
    TransientUpstreamError,
)
from dicomcast.fhir.client import FhirClient, encode_entries
from dicomcast.fhir.mapping.types import FhirVersion


def _client(status: int, body: dict[str, Any]) -> FhirClient:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    return FhirClient(httpx.Client(base_url="http://fhir.test", transport=transport))


def _capabilities(version: str, interactions: list[str]) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": version,
        "rest": [{"mode": "server", "interaction": [{"code": c} for c in interactions]}],
    }


@pytest.mark.parametrize(("fhir_version", "expected"), [("4.0.1", FhirVersion.R4), ("5.0.0", FhirVersion.R5)])
def test_the_server_release_picks_the_models(fhir_version: str, expected: FhirVersion) -> None:
    assert _client(200, _capabilities(fhir_version, ["transaction"])).capabilities().version is expected


def test_servers_without_transactions_or_of_other_releases_are_refused() -> None:
    with pytest.raises(ServerNotSupportedError, match="transaction"):
        _client(200, _capabilities("4.0.1", ["batch"])).capabilities()
    with pytest.raises(ServerNotSupportedError, match=r"3\.0\.2"):
        _client(200, _capabilities("3.0.2", ["transaction"])).capabilities()


@pytest.mark.parametrize(("status", "error"), [(412, ConflictError), (403, AuthError), (422, PermanentUpstreamError)])
def test_statuses_become_dicomcast_errors(status: int, error: type[Exception]) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "diagnostics": "ImagingStudy.status"}],
    }
    with pytest.raises(error):
        _client(status, outcome).transaction([{"request": {"method": "PUT", "url": "ImagingStudy/x"}}])


def _paged(links: list[str]) -> tuple[FhirClient, list[httpx.Request]]:
    """A search answering one page per link in `links` (each page's `next` is the following link)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        page = len(seen) - 1
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": {"resourceType": "Patient", "id": f"p{page}"}, "search": {"mode": "match"}}],
        }
        if page < len(links):
            bundle["link"] = [{"relation": "next", "url": links[page]}]
        return httpx.Response(200, json=bundle, headers={"Content-Type": "application/fhir+json"})

    client = httpx.Client(
        base_url="https://fhir.test:8443/r4",
        transport=httpx.MockTransport(handle),
        headers={"Authorization": "Bearer T"},
    )
    return FhirClient(client), seen


def test_next_links_to_other_origins_are_followed_on_the_configured_one() -> None:
    fhir, seen = _paged(
        [
            "http://127.0.0.2:9999/r4/Patient?_page=2",
            "https://evil.test/r4/Patient?_page=3",
            "http://fhir.test:8443/r4/Patient?_page=4",
            "Patient?_page=5",
        ]
    )
    found = fhir.search("Patient", {"identifier": "x"})
    assert [r["id"] for r in found] == ["p0", "p1", "p2", "p3", "p4"]
    assert {(r.url.scheme, r.url.host, r.url.port) for r in seen} == {("https", "fhir.test", 8443)}
    assert [r.url.params.get("_page") for r in seen[1:]] == ["2", "3", "4", "5"]
    assert all(r.url.path == "/r4/Patient" for r in seen)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>sign in</html>", headers={"Content-Type": "text/html"}),
        httpx.Response(204),
        httpx.Response(
            200, content=b'{"resourceType": "Bundle", "entry": [', headers={"Content-Type": "application/json"}
        ),
        httpx.Response(200, json={"resourceType": "OperationOutcome"}),
    ],
)
def test_a_write_answered_by_something_else_is_not_taken_as_written(answer: httpx.Response) -> None:
    fhir = FhirClient(httpx.Client(base_url="http://fhir.test", transport=httpx.MockTransport(lambda r: answer)))
    with pytest.raises(TransientUpstreamError):
        fhir.transaction([{"request": {"method": "PUT", "url": "ImagingStudy/x"}}])
    with pytest.raises(TransientUpstreamError):
        fhir.put({"resourceType": "Endpoint", "id": "e"})


def test_a_read_is_gone_only_on_404_or_410() -> None:
    for status in (404, 410):
        fhir = FhirClient(
            httpx.Client(
                base_url="http://fhir.test", transport=httpx.MockTransport(lambda r, s=status: httpx.Response(s))
            )
        )
        assert fhir.read("Endpoint", "e") is None
    empty = FhirClient(
        httpx.Client(base_url="http://fhir.test", transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    )
    with pytest.raises(TransientUpstreamError):
        empty.read("Endpoint", "e")


def test_many_identifiers_are_searched_with_few_posts_and_few_identifiers_with_a_get() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "entry": []})

    fhir = FhirClient(httpx.Client(base_url="http://fhir.test", transport=httpx.MockTransport(answer)))
    fhir.search_by_identifiers("Patient", [f"urn:x|{n}" for n in range(40)])
    fhir.search_by_identifiers("Patient", [f"urn:x|{n}" for n in range(401)])

    assert [(r.method, r.url.path) for r in seen] == [("GET", "/Patient")] + [("POST", "/Patient/_search")] * 3
    form = httpx.QueryParams(seen[1].content.decode())
    assert len(form["identifier"].split(",")) == 200


def test_the_posts_of_one_search_are_in_flight_together_and_their_answers_kept_in_order() -> None:
    arrived = threading.Barrier(3, timeout=60)  # released only when three POSTs are in flight at once

    def answer(request: httpx.Request) -> httpx.Response:
        arrived.wait()
        first = httpx.QueryParams(request.content.decode())["identifier"].split(",")[0]
        entry = [{"resource": {"resourceType": "Patient", "id": first.split("|")[1]}}]
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "entry": entry})

    client = httpx.Client(base_url="http://fhir.test", transport=httpx.MockTransport(answer))
    fhir = FhirClient(client, searches_at_once=4)
    found = fhir.search_by_identifiers("Patient", [f"urn:x|{n:03d}" for n in range(600)])

    assert [r["id"] for r in found] == ["000", "200", "400"]  # chunk order, whatever order they came back in


def test_a_transaction_of_several_parts_sends_their_entries_in_order() -> None:
    seen: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bundle = json.loads(request.content)
        seen.append(bundle)
        entries = [{"response": {"status": "200 OK", "etag": 'W/"2"'}} for _ in bundle["entry"]]
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": entries})

    fhir = FhirClient(httpx.Client(base_url="http://fhir.test", transport=httpx.MockTransport(answer)))
    parts = [encode_entries([{"request": {"method": "PUT", "url": f"Patient/{n}"}}]) for n in range(3)]

    results = fhir.transaction_of([parts[0], encode_entries([]), parts[1], parts[2]])

    assert [e["request"]["url"] for e in seen[0]["entry"]] == ["Patient/0", "Patient/1", "Patient/2"]
    assert seen[0]["type"] == "transaction" and [r.version_id for r in results] == ["2"] * 3


def test_encoded_entries_are_each_entrys_compact_json_comma_separated() -> None:
    entries = [
        {"resource": {"resourceType": "Patient", "name": [{"family": "Müller", "given": ["Zoë"]}]}},
        {"request": {"method": "DELETE", "url": "Observation/1"}, "n": 1.5, "ok": True, "none": None},
    ]
    one_by_one = b",".join(
        json.dumps(e, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode() for e in entries
    )
    encoded = encode_entries(entries)
    assert (encoded.body, encoded.count) == (one_by_one, 2)
    assert "Müller".encode() in encoded.body  # UTF-8, not \u escapes
    assert (encode_entries([]).body, encode_entries([]).count) == (b"", 0)
    with pytest.raises(ValueError):  # NaN is no JSON
        encode_entries([{"value": float("nan")}])
