"""Endpoint and API version checks (HTTP statuses: tests/unit/test_http_boundary.py)."""

from __future__ import annotations

import pytest

from dicomcast.dicom.azure_http import parse_service_root, private_root
from dicomcast.errors import ConfigError

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


@pytest.mark.parametrize("url", [SERVICE, f"{SERVICE}/", f" {SERVICE} "])
def test_endpoint_without_version_is_v1_as_in_dicom_cast(url: str) -> None:
    """DICOM Cast appended /v1 itself, so a DICOM Cast vault holds the bare service URL."""
    parsed = parse_service_root(url)
    assert (parsed.url, parsed.version, parsed.versionless) == (f"{SERVICE}/v1", 1, True)
    assert parsed.given == url.strip()
    assert parse_service_root(f"{SERVICE}/v1").versionless is False
    # the same service under v2, as the carry-over to v2 reads it
    assert parsed.with_version(2).url == f"{SERVICE}/v2"


def test_endpoint_with_a_query_is_refused() -> None:
    with pytest.raises(ConfigError, match="without a query"):
        parse_service_root(f"{SERVICE}/v2?x=1")


def test_private_endpoint_takes_the_public_version() -> None:
    public = parse_service_root(f"{SERVICE}/v2")
    assert private_root("http://dicom.internal:8080", public).url == "http://dicom.internal:8080/v2"
    assert private_root("http://dicom.internal:8080/v2", public).url == "http://dicom.internal:8080/v2"
    with pytest.raises(ConfigError, match="PrivateEndpoint uses API v1"):
        private_root("http://dicom.internal:8080/v1", public)
