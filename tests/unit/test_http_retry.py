"""Reads are retried a few times at the transport; writes are not (the worker retries them whole)."""

from __future__ import annotations

import httpx
import pytest

from dicomcast.errors import TransientUpstreamError
from dicomcast.http import RetryingTransport, Upstream, make_client, send

ORTHANC = Upstream("Orthanc", "DicomWeb:Endpoint", "DicomWeb:Authentication:*")


def _flaky(answers: list[int | Exception]) -> tuple[httpx.MockTransport, list[str]]:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        answer = answers.pop(0) if answers else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, headers={"Retry-After": "0"}, json={})

    return httpx.MockTransport(handle), seen


def test_a_read_survives_a_few_transient_failures() -> None:
    mock, seen = _flaky([503, httpx.ConnectError("reset"), 429])
    client = make_client("http://dicom.test", transport=mock)
    assert client.get("/changes").status_code == 200
    assert seen == ["GET"] * 4


def test_out_of_attempts_the_last_answer_reaches_the_caller() -> None:
    mock, seen = _flaky([503] * 10)
    client = httpx.Client(base_url="http://dicom.test", transport=RetryingTransport(mock, attempts=3, max_wait=0.01))
    with pytest.raises(TransientUpstreamError) as caught:
        send(ORTHANC, client, client.build_request("GET", "/changes"))
    assert caught.value.status == 503 and len(seen) == 3


def test_writes_are_sent_once() -> None:
    mock, seen = _flaky([503])
    client = make_client("http://fhir.test", transport=mock)
    assert client.post("/", json={}).status_code == 503
    assert seen == ["POST"]
