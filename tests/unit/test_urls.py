"""URL redaction (every output) and rebasing of server-given links (requests)."""

from __future__ import annotations

import httpx
import pytest

from dicomcast.urls import rebase, redact_text, redact_url


@pytest.mark.parametrize(
    "url",
    [
        "https://ws-dicom.dicom.azurehealthcareapis.com/v2",
        "http://127.0.0.1:8042",
        "http://orthanc:8042/dicom-web",
        "https://host/path?partition=a&limit=10",
    ],
)
def test_urls_without_credentials_are_unchanged(url: str) -> None:
    """Source names (checkpoint keys) of such URLs stay exactly as they were."""
    assert redact_url(url) == url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://ana:pw@host/v2", "https://host/v2"),
        ("https://ana@host:8443/dicom-web", "https://host:8443/dicom-web"),
        ("https://host/x?sig=abc&sv=2024&se=2030", "https://host/x?sig=***&sv=2024&se=2030"),
        ("https://h/cb?code=abc&state=1", "https://h/cb?code=***&state=1"),
        ("https://h/?access_token=a&Client_Secret=b&x-api-key=c&API-KEY=d&pwd=e", None),
        ("https://u:p@h/?token=t", "https://h/?token=***"),
    ],
)
def test_credentials_and_secret_parameters_are_redacted(url: str, shown: str | None) -> None:
    redacted = redact_url(url)
    if shown is not None:
        assert redacted == shown
    for secret in ("pw@", "abc", "=a&", "=b", "=c", "=d", "=e", "ana", "u:p", "=t"):
        assert secret not in redacted


def test_urls_in_free_text_are_redacted() -> None:
    text = "failed: GET https://ana:pw@host/v2/changefeed?sig=xyz answered 503 (see http://plain/)"
    assert redact_text(text) == "failed: GET https://host/v2/changefeed?sig=*** answered 503 (see http://plain/)"


@pytest.mark.parametrize(
    "link",
    [
        "http://127.0.0.2:9999/fhir/Patient?_getpages=abc&_count=200",
        "https://evil.test/fhir/Patient?_getpages=abc&_count=200",
        "/fhir/Patient?_getpages=abc&_count=200",
    ],
)
def test_links_are_rebased_onto_the_configured_origin(link: str) -> None:
    base = httpx.URL("http://127.0.0.1:8080/fhir/")
    assert str(rebase(link, base)) == "http://127.0.0.1:8080/fhir/Patient?_getpages=abc&_count=200"
