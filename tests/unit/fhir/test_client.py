"""The FHIR client's start-up check and error translation (httpx.MockTransport)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dicomcast.errors import AuthError, ConflictError, PermanentUpstreamError, ServerNotSupportedError
from dicomcast.fhir.client import FhirClient
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
