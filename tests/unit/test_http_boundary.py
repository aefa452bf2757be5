"""The one HTTP boundary (dicomcast/http.py): statuses, bodies and messages, for every server alike."""

from __future__ import annotations

import gc
import json
import weakref
from typing import Any

import httpx
import pytest

from dicomcast.errors import (
    AuthError,
    ConflictError,
    DicomcastError,
    ExitCode,
    PermanentUpstreamError,
    TransientUpstreamError,
    UnparseableBodyError,
    UpstreamError,
    UpstreamRedirectError,
)
from dicomcast.http import StatusKind, Upstream, get_json, json_body, make_client, send, status_kind

DICOM = Upstream("DICOMweb", "DicomWeb:Endpoint", "DicomWeb:Authentication:*")
BASE = "https://ana:s3cret@dicom.test/v2"


def _client(answer: httpx.Response | Any) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request) if callable(answer) else answer

    client = make_client(BASE, transport=httpx.MockTransport(handle))
    client._transport._attempts = 1  # type: ignore[attr-defined]  # one try: the table, not the retries
    return client, seen


def _get(answer: httpx.Response, **kwargs: Any) -> Any:
    client, _ = _client(answer)
    return get_json(DICOM, client, "/changefeed", params={"offset": "0", "token": "abc"}, **kwargs)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        *[(s, StatusKind.SUCCESS) for s in (200, 201, 204)],
        *[(s, StatusKind.REDIRECT) for s in (300, 301, 302, 303, 304, 307, 308)],
        *[(s, StatusKind.AUTH) for s in (401, 403, 407, 511)],
        *[(s, StatusKind.GONE) for s in (404, 410)],
        *[(s, StatusKind.CONFLICT) for s in (409, 412)],
        *[(s, StatusKind.TRANSIENT) for s in (408, 421, 425, 429, 500, 501, 502, 503, 504, 505, 507, 520, 599)],
        *[(s, StatusKind.PERMANENT) for s in (400, 405, 406, 413, 415, 422, 451)],
    ],
)
def test_the_status_table(status: int, kind: StatusKind) -> None:
    assert status_kind(status) is kind


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed_and_names_the_setting(status: int) -> None:
    login = "https://login.gateway.test/signin?return=https%3A%2F%2Fdicom.test&code=XYZ"
    client, seen = _client(httpx.Response(status, headers={"Location": login}))
    with pytest.raises(UpstreamRedirectError) as raised:
        get_json(DICOM, client, "/changefeed")
    message = str(raised.value)
    assert len(seen) == 1  # not followed
    assert "DicomWeb:Endpoint" in message and "DicomWeb__Endpoint" in message and "DicomWeb--Endpoint" in message
    assert "redirected to https://login.gateway.test" in message
    assert "XYZ" not in message and "signin" not in message and "s3cret" not in message
    assert isinstance(raised.value, DicomcastError) and not isinstance(raised.value, PermanentUpstreamError)
    assert raised.value.exit_code is ExitCode.CONFIG


@pytest.mark.parametrize(
    ("response", "says"),
    [
        (httpx.Response(204), "without a body"),
        (httpx.Response(200, headers={"Content-Type": "application/json"}), "without a body"),
        (httpx.Response(200, headers={"Content-Type": "application/json"}, content=b"  \n"), "without a body"),
        (httpx.Response(200, headers={"Content-Type": "text/html"}, content=b"<html>Sign in</html>"), "text/html"),
        (httpx.Response(200, content=b"[1, 2]"), "no Content-Type"),
        (httpx.Response(200, headers={"Content-Type": "application/json"}, content=b'[{"Sequence": 1'), "cut short"),
        (httpx.Response(200, headers={"Content-Type": "application/json"}, content=b"\xff\xfe[1"), "cut short"),
    ],
)
def test_a_body_that_is_not_the_expected_json_is_transient_never_empty(response: httpx.Response, says: str) -> None:
    with pytest.raises(TransientUpstreamError, match=says):
        _get(response)


@pytest.mark.parametrize(
    "media", ["application/json", "application/dicom+json", "application/fhir+json; charset=utf-8"]
)
def test_json_media_types_parse(media: str) -> None:
    assert _get(httpx.Response(200, headers={"Content-Type": media}, content=b'[{"a": 1}]')) == [{"a": 1}]


def test_deep_nesting_is_unparseable_not_transient() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(UnparseableBodyError) as raised:
        _get(httpx.Response(200, headers={"Content-Type": "application/json"}, content=deep))
    assert not isinstance(raised.value, TransientUpstreamError)


def test_an_integer_past_the_digit_limit_is_unparseable() -> None:
    with pytest.raises(UnparseableBodyError):
        _get(httpx.Response(200, headers={"Content-Type": "application/json"}, content=b"[" + b"9" * 5000 + b"]"))


@pytest.mark.parametrize("status", [404, 410])
def test_only_an_explicit_404_or_410_is_gone(status: int) -> None:
    assert _get(httpx.Response(status), gone_ok=True) is None
    with pytest.raises(PermanentUpstreamError) as raised:
        _get(httpx.Response(status))
    assert raised.value.status == status


def test_a_204_is_not_gone_even_where_gone_is_allowed() -> None:
    with pytest.raises(TransientUpstreamError):
        _get(httpx.Response(204), gone_ok=True)


@pytest.mark.parametrize("status", [408, 429, 500, 501, 502, 503, 504, 505])
def test_transient_statuses_keep_retry_after_and_no_query(status: int) -> None:
    with pytest.raises(TransientUpstreamError) as raised:
        _get(httpx.Response(status, headers={"Retry-After": "7"}, text="upstream said: Jane Doe"))
    message = str(raised.value)
    assert raised.value.status == status and raised.value.retry_after == 7.0
    assert "offset" not in message and "abc" not in message and "s3cret" not in message and "Jane" not in message


@pytest.mark.parametrize("status", [401, 403, 407, 511])
def test_auth_statuses(status: int) -> None:
    with pytest.raises(AuthError, match="DicomWeb"):
        _get(httpx.Response(status))


@pytest.mark.parametrize("status", [409, 412])
def test_conflicts(status: int) -> None:
    with pytest.raises(ConflictError):
        _get(httpx.Response(status))


def test_no_server_text_is_kept_from_an_error() -> None:
    """Neither the body of a DICOM error, nor a non-standard reason phrase, nor OperationOutcome text."""
    dicom_error = httpx.Response(
        400,
        text='{"errors":["PatientName Jane^Doe is invalid"]}',
        headers={"Content-Type": "application/json"},
        extensions={"reason_phrase": b"Bad PatientName Jane^Doe"},
    )
    with pytest.raises(PermanentUpstreamError) as raised:
        _get(dicom_error)
    assert "Jane" not in str(raised.value) and "Bad Request" in str(raised.value)
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "Patient Jane Doe (id 12345) has a bad birthDate 1970-13-01",
                "details": {"text": "Jane Doe"},
                "expression": ["Patient.birthDate", "Patient.name.where(family='Doe')"],
                "location": ["Jane Doe"],
            }
        ],
    }
    response = httpx.Response(422, headers={"Content-Type": "application/fhir+json"}, content=json.dumps(outcome))
    with pytest.raises(PermanentUpstreamError) as raised:
        _get(response)
    message = str(raised.value)
    assert "error invalid at Patient.birthDate, Patient.name" in message
    assert not any(word in message for word in ("Jane", "Doe", "12345", "1970"))


def test_transport_errors_are_transient_and_name_no_credentials() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, _ = _client(refuse)
    with pytest.raises(TransientUpstreamError) as raised:
        get_json(DICOM, client, "/changefeed")
    assert "ConnectError" in str(raised.value) and "s3cret" not in str(raised.value) and "ana" not in str(raised.value)


def test_userinfo_in_the_url_is_sent_as_basic_auth() -> None:
    client, seen = _client(httpx.Response(200, headers={"Content-Type": "application/json"}, content=b"[]"))
    get_json(DICOM, client, "/changefeed")
    assert seen[0].headers["Authorization"].startswith("Basic ")


def test_every_error_of_the_boundary_is_a_dicomcast_upstream_or_auth_error() -> None:
    """So the worker's loop sees "cycle failed, checkpoint kept" and never an unexpected crash."""
    for status in (*range(300, 309), *range(400, 452), *range(500, 512)):
        try:
            _get(httpx.Response(status))
        except (UpstreamError, AuthError):
            continue
        except Exception as exc:  # pragma: no cover - the assertion says which
            pytest.fail(f"HTTP {status} raised {type(exc).__name__}")


def test_check_reports_a_redirect_as_a_configuration_problem_without_credentials() -> None:
    from dicomcast.checks import failed

    client, _ = _client(httpx.Response(302, headers={"Location": "https://login.test/?code=X"}))
    with pytest.raises(UpstreamRedirectError) as raised:
        get_json(DICOM, client, "/changefeed/latest")
    line = failed("DICOMweb", raised.value)
    assert line.exit_code is ExitCode.CONFIG
    assert "DicomWeb:Endpoint" in line.detail and "s3cret" not in line.detail and "code=X" not in line.detail


def test_a_response_and_its_body_are_freed_when_dropped_not_at_the_next_cyclic_collection() -> None:
    client, _ = _client(lambda _: httpx.Response(200, json=[{"sequence": 1}] * 1000))
    request = client.build_request("GET", "/changefeed")
    gc.disable()  # as if the collector had not run yet (tune_collector makes its runs rare)
    try:
        response = send(DICOM, client, request)
        assert json_body(DICOM, response) == [{"sequence": 1}] * 1000
        assert response.is_closed and response.content
        alive = weakref.ref(response)
        del response
        assert alive() is None  # httpx's response and stream refer to each other: send breaks that loop
    finally:
        gc.enable()
