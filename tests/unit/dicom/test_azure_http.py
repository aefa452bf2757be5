"""Endpoint and API version checks; HTTP statuses as dicomcast errors."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from dicomcast.dicom.azure_http import parse_service_root, private_root, raise_for_status, retry_after
from dicomcast.errors import AuthError, ConfigError, PermanentUpstreamError, TransientUpstreamError

SERVICE = "https://ws-dicom.dicom.azurehealthcareapis.com"


@pytest.mark.parametrize(
    ("url", "root", "version"),
    [
        (f"{SERVICE}/v1", f"{SERVICE}/v1", 1),
        (f"{SERVICE}/v2/", f"{SERVICE}/v2", 2),
        (f"{SERVICE}/V2", f"{SERVICE}/v2", 2),
        ("http://127.0.0.1:8080/dicom/v2", "http://127.0.0.1:8080/dicom/v2", 2),
    ],
)
def test_endpoint_with_version(url: str, root: str, version: int) -> None:
    parsed = parse_service_root(url)
    assert (parsed.url, parsed.version) == (root, version)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (SERVICE, f"has no API version, and a DICOM service URL without one answers 404. Use {SERVICE}/v2"),
        (f"{SERVICE}/", f"Use {SERVICE}/v2"),
        (f"{SERVICE}/v1.0-prerelease", f"does not read; use {SERVICE}/v2"),
        (f"{SERVICE}/v3", "API version v3"),
        (f"{SERVICE}/v2/changefeed", f"use {SERVICE}/v2."),
        (f"{SERVICE}/v2/studies", f"use {SERVICE}/v2."),
        ("ftp://host/v2", "is not an http(s) URL"),
        (None, "DicomWeb:Endpoint is not set"),
    ],
)
def test_endpoint_errors_say_what_to_use(url: str | None, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_service_root(url)
    assert says in str(raised.value)
    assert "DicomWeb:Endpoint" in str(raised.value)


def test_private_endpoint_takes_the_public_version() -> None:
    public = parse_service_root(f"{SERVICE}/v2")
    assert private_root("http://dicom.internal:8080", public).url == "http://dicom.internal:8080/v2"
    assert private_root("http://dicom.internal:8080/v2", public).url == "http://dicom.internal:8080/v2"
    with pytest.raises(ConfigError, match="PrivateEndpoint uses API v1"):
        private_root("http://dicom.internal:8080/v1", public)


def _response(status: int, headers: dict[str, str] | None = None, text: str = "") -> httpx.Response:
    request = httpx.Request("GET", f"{SERVICE}/v2/changefeed?startTime=x")
    return httpx.Response(status, headers=headers, text=text, request=request)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses(status: int) -> None:
    with pytest.raises(TransientUpstreamError) as raised:
        raise_for_status(_response(status, {"Retry-After": "7"}))
    assert raised.value.status == status
    assert raised.value.retry_after == 7.0
    assert "startTime" not in str(raised.value)  # no query strings in messages


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_permanent_statuses(status: int) -> None:
    with pytest.raises(PermanentUpstreamError) as raised:
        raise_for_status(_response(status, text='{"errors":["The endTime must be after the startTime."]}'))
    assert raised.value.status == status
    assert "endTime must be after" in str(raised.value)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_statuses_name_the_setting(status: int) -> None:
    with pytest.raises(AuthError, match=r"DicomWeb:Authentication:\*"):
        raise_for_status(_response(status))


def test_allowed_statuses_pass() -> None:
    raise_for_status(_response(404), allow=(404,))


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after({"retry-after": "Thu, 01 Jan 2026 12:00:30 GMT"}, now) == 30.0
    assert retry_after({"retry-after": "soon"}, now) is None
    assert retry_after({}, now) is None
