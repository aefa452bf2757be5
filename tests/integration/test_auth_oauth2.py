"""OAuth2ClientCredential and OAuth2UserPasswordCredential against two real token servers on
loopback: an Entra-shaped Python fake that checks secrets (tests/servers/aad.py) and npm
oauth2-mock-server 8.2.3 with a secret-checking wrapper (tests/servers/oauth/server.mjs)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dicomcast.auth import build_auth
from dicomcast.config.settings import AuthenticationSettings
from dicomcast.errors import AuthError
from tests.servers import fixtures, oauth_mock
from tests.servers.aad import FakeAad
from tests.servers.bearer_api import BearerApi

pytestmark = pytest.mark.integration

# the identity fakes' fixtures, used by name
aad = fixtures.aad
bearer_api = fixtures.bearer_api

CLIENT_SECRET = "client-secret-value-1"
PASSWORD = "user-password-value-1"


def oauth2(kind: str, token_uri: str, **fields: str) -> AuthenticationSettings:
    section = {"TokenUri": token_uri, "ClientId": "dicomcast-client", "ClientSecret": CLIENT_SECRET} | fields
    return AuthenticationSettings.model_validate({"Enabled": True, "AuthenticationType": kind, kind: section})


def get(api: BearerApi, settings: AuthenticationSettings, server: str = "DicomWeb") -> httpx.Response:
    with httpx.Client(base_url=api.url, auth=build_auth(settings, server), timeout=10) as client:
        return client.get("/v1/changefeed")


def test_client_credentials_v1_resource(aad: FakeAad, bearer_api: BearerApi) -> None:
    bearer_api.accept = lambda t: t in aad.issued and aad.issued[t].audience == "https://dicom.example"
    settings = oauth2("OAuth2ClientCredential", aad.v1_token_uri(), Resource="https://dicom.example")
    assert get(bearer_api, settings).status_code == 200
    (issued,) = aad.issued.values()
    assert (issued.grant_type, issued.client_id) == ("client_credentials", "dicomcast-client")


def test_client_credentials_v2_scope_and_renewal_after_401(aad: FakeAad, bearer_api: BearerApi) -> None:
    bearer_api.accept = lambda t: t == "aad-token-2"  # the first token is already revoked
    settings = oauth2("OAuth2ClientCredential", aad.v2_token_uri(), Scope="https://fhir.example/.default")
    assert get(bearer_api, settings, "Fhir").status_code == 200
    assert [i.audience for i in aad.issued.values()] == ["https://fhir.example/.default"] * 2


def test_wrong_secret_names_client_secret(aad: FakeAad, bearer_api: BearerApi) -> None:
    aad.clients["dicomcast-client"] = "rotated-secret"
    settings = oauth2("OAuth2ClientCredential", aad.v2_token_uri(), Scope="x")
    with pytest.raises(AuthError) as caught:
        get(bearer_api, settings, "Fhir")
    message = str(caught.value)
    assert "invalid_client" in message and "Fhir:Authentication:OAuth2ClientCredential:ClientSecret" in message
    assert CLIENT_SECRET not in message
    assert bearer_api.seen == []  # no request went out without a token


def test_missing_scope_names_scope(aad: FakeAad, bearer_api: BearerApi) -> None:
    with pytest.raises(AuthError, match=r"invalid_scope.*OAuth2ClientCredential:Scope"):
        get(bearer_api, oauth2("OAuth2ClientCredential", aad.v2_token_uri()), "Fhir")


def test_user_password(aad: FakeAad, bearer_api: BearerApi) -> None:
    bearer_api.accept = lambda t: t in aad.issued
    settings = oauth2(
        "OAuth2UserPasswordCredential", aad.v1_token_uri(), Resource="r", Username="sync-user", Password=PASSWORD
    )
    assert get(bearer_api, settings).status_code == 200
    assert aad.forms[0]["grant_type"] == "password" and aad.forms[0]["username"] == "sync-user"


def test_wrong_password_names_username_and_password(aad: FakeAad, bearer_api: BearerApi) -> None:
    settings = oauth2(
        "OAuth2UserPasswordCredential", aad.v1_token_uri(), Resource="r", Username="sync-user", Password="nope"
    )
    with pytest.raises(AuthError, match=r"invalid_grant.*OAuth2UserPasswordCredential:Username.*Password"):
        get(bearer_api, settings)


@pytest.fixture
def oauth_server() -> Iterator[oauth_mock.OAuthMock]:
    reason = oauth_mock.available()
    if reason:
        pytest.skip(reason)
    server = oauth_mock.start({"dicomcast-client": CLIENT_SECRET}, {"sync-user": PASSWORD}, require_scope=True)
    yield server
    server.stop()


def claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_oauth2_mock_server_client_credentials(oauth_server: oauth_mock.OAuthMock, bearer_api: BearerApi) -> None:
    bearer_api.accept = lambda t: (
        claims(t).get("client_id") == "dicomcast-client" and claims(t)["iss"] == oauth_server.url
    )
    settings = oauth2("OAuth2ClientCredential", oauth_server.token_uri, Scope="system/*.rs")
    assert get(bearer_api, settings, "Fhir").status_code == 200
    assert claims(bearer_api.seen[0])["scope"] == "system/*.rs"


def test_oauth2_mock_server_password_grant(oauth_server: oauth_mock.OAuthMock, bearer_api: BearerApi) -> None:
    bearer_api.accept = lambda t: claims(t).get("sub") == "sync-user"
    settings = oauth2(
        "OAuth2UserPasswordCredential", oauth_server.token_uri, Scope="fhir", Username="sync-user", Password=PASSWORD
    )
    assert get(bearer_api, settings, "Fhir").status_code == 200


def test_oauth2_mock_server_refusals(oauth_server: oauth_mock.OAuthMock, bearer_api: BearerApi) -> None:
    wrong = oauth2("OAuth2ClientCredential", oauth_server.token_uri, Scope="fhir", ClientSecret="wrong-secret")
    with pytest.raises(AuthError, match="HTTP 401, invalid_client"):
        get(bearer_api, wrong, "Fhir")
    with pytest.raises(AuthError, match="invalid_scope"):
        get(bearer_api, oauth2("OAuth2ClientCredential", oauth_server.token_uri), "Fhir")
