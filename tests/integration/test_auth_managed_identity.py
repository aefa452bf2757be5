"""ManagedIdentity auth: the real azure-identity ManagedIdentityCredential against the loopback
token endpoint, sending its tokens to a loopback API (and to the real sekmet FHIR server) that
demands them."""

from __future__ import annotations

import httpx
import pytest

from dicomcast.auth import build_auth, renewal_count
from dicomcast.config.settings import AuthenticationSettings
from dicomcast.errors import AuthError
from tests import peers
from tests.servers import fixtures
from tests.servers.bearer_api import BearerApi
from tests.servers.mi_token import MiTokenServer

pytestmark = pytest.mark.integration

# the identity fakes' fixtures, used by name
bearer_api = fixtures.bearer_api
managed_identity = fixtures.managed_identity

RESOURCE = "https://fhir.example.azurehealthcareapis.com"


def mi_settings(client_id: str | None = None) -> AuthenticationSettings:
    credential = {"Resource": RESOURCE} | ({"ClientId": client_id} if client_id else {})
    return AuthenticationSettings.model_validate(
        {"Enabled": "true", "AuthenticationType": "ManagedIdentity", "ManagedIdentityCredential": credential}
    )


def client_for(api: BearerApi, settings: AuthenticationSettings, hook: list[str] | None = None) -> httpx.Client:
    auth = build_auth(settings, "Fhir", on_token_renewed=hook.append if hook is not None else None)
    return httpx.Client(base_url=api.url, auth=auth, timeout=10)


def test_token_for_the_resource_is_sent_and_cached(managed_identity: MiTokenServer, bearer_api: BearerApi) -> None:
    bearer_api.accept = lambda token: token in managed_identity.issued
    with client_for(bearer_api, mi_settings(client_id="1111-user-assigned")) as client:
        assert client.get("/Patient").status_code == 200
        assert client.post("/", content=b"{}").status_code == 200
    (request,) = managed_identity.requests  # one token for both calls
    assert request.resource == RESOURCE  # the scope <Resource>/.default reaches the endpoint as resource
    assert request.client_id == "1111-user-assigned"
    assert bearer_api.seen == ["mi-token-1", "mi-token-1"]


def test_expired_token_mid_use_is_renewed_and_the_call_retried(
    managed_identity: MiTokenServer, bearer_api: BearerApi
) -> None:
    hook: list[str] = []
    with client_for(bearer_api, mi_settings(), hook) as client:
        bearer_api.accepted = {"mi-token-1"}
        assert client.get("/Patient").status_code == 200
        before = renewal_count("Fhir")
        bearer_api.accepted = {"mi-token-2"}  # the server now considers mi-token-1 expired
        response = client.post("/", content=b'{"resourceType":"Bundle"}')
    assert response.status_code == 200
    # the forced renewal got a new token from the endpoint, not azure-identity's cached one
    assert managed_identity.issued == ["mi-token-1", "mi-token-2"]
    assert bearer_api.seen == ["mi-token-1", "mi-token-1", "mi-token-2"]
    assert bearer_api.bodies[-1] == b'{"resourceType":"Bundle"}'
    assert hook == ["Fhir", "Fhir"]
    assert renewal_count("Fhir") == before + 1


def test_second_401_is_an_auth_error(managed_identity: MiTokenServer, bearer_api: BearerApi) -> None:
    with client_for(bearer_api, mi_settings()) as client, pytest.raises(AuthError) as caught:
        client.get("/Patient")
    message = str(caught.value)
    assert "Fhir: GET" in message and "401 twice" in message
    assert "Fhir:Authentication:ManagedIdentityCredential:Resource" in message
    assert "mi-token" not in message
    assert len(managed_identity.requests) == 2  # one renewal, no more


def test_403_names_the_role(managed_identity: MiTokenServer, bearer_api: BearerApi) -> None:
    bearer_api.forbidden = {"mi-token-1"}
    with client_for(bearer_api, mi_settings()) as client, pytest.raises(AuthError, match=r"403 Forbidden.*role"):
        client.get("/ImagingStudy")


def test_real_fhir_server_demanding_the_token(managed_identity: MiTokenServer) -> None:
    """sekmet accepts one static bearer token; the identity first hands out a stale one."""
    good = "mi-token-accepted-by-sekmet"
    managed_identity.queue = ["mi-token-stale", good]
    try:
        fhir = peers.start_fhir(token=good)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        with httpx.Client(auth=build_auth(mi_settings(), "Fhir"), timeout=30) as client:
            response = client.get(f"{fhir.url}/Patient")
    finally:
        fhir.stop()
    assert response.status_code == 200
    assert response.json()["resourceType"] == "Bundle"
    assert managed_identity.issued == ["mi-token-stale", good]
