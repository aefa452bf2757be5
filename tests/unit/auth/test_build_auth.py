"""build_auth: the type chosen, required settings as ConfigError lines, OAuth2 and Basic wiring."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from dicomcast.auth import build_auth
from dicomcast.auth.basic import BasicAuth
from dicomcast.auth.managed_identity import scope_for
from dicomcast.auth.tokens import BearerAuth
from dicomcast.config.settings import AuthenticationSettings
from dicomcast.errors import AuthError, ConfigError, TransientUpstreamError

SECRET = "s3cr3t-client-value"
PASSWORD = "p4ss-user-value"


def auth_settings(kind: str, section: str | None = None, **fields: Any) -> AuthenticationSettings:
    data: dict[str, Any] = {"Enabled": True, "AuthenticationType": kind}
    if section:
        data[section] = fields
    return AuthenticationSettings.model_validate(data)


def test_disabled_or_none_gives_no_auth() -> None:
    assert build_auth(AuthenticationSettings(), "Fhir") is None
    disabled = AuthenticationSettings.model_validate({"Enabled": False, "AuthenticationType": "ManagedIdentity"})
    assert build_auth(disabled, "Fhir") is None
    assert build_auth(auth_settings("none"), "Fhir") is None


def test_missing_token_uri_names_env_var_and_secret() -> None:
    settings = auth_settings("OAuth2ClientCredential", "OAuth2ClientCredential", ClientId="c", ClientSecret=SECRET)
    with pytest.raises(ConfigError) as caught:
        build_auth(settings, "Fhir")
    assert caught.value.problems == [
        "Fhir:Authentication:OAuth2ClientCredential:TokenUri: required for this AuthenticationType "
        "(set env Fhir__Authentication__OAuth2ClientCredential__TokenUri or Key Vault secret "
        "Fhir--Authentication--OAuth2ClientCredential--TokenUri)"
    ]


def test_every_missing_field_is_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        build_auth(auth_settings("OAuth2UserPasswordCredential"), "DicomWeb")
    names = [line.split(":")[3] for line in caught.value.problems]
    assert names == ["TokenUri", "ClientId", "ClientSecret", "Username", "Password"]
    assert all(
        line.startswith("DicomWeb:Authentication:OAuth2UserPasswordCredential:") for line in caught.value.problems
    )


def test_managed_identity_needs_resource() -> None:
    with pytest.raises(ConfigError, match="ManagedIdentityCredential--Resource"):
        build_auth(auth_settings("ManagedIdentity"), "DicomWeb")
    built = build_auth(
        auth_settings("ManagedIdentity", "ManagedIdentityCredential", Resource="https://dicom"), "DicomWeb"
    )
    assert isinstance(built, BearerAuth)


def test_scope_from_resource() -> None:
    assert scope_for("https://dicom.healthcareapis.azure.com") == "https://dicom.healthcareapis.azure.com/.default"
    assert scope_for("https://fhir.example/") == "https://fhir.example/.default"
    assert scope_for("api://x/.default") == "api://x/.default"


def test_token_uri_must_be_a_url() -> None:
    settings = auth_settings(
        "OAuth2ClientCredential", "OAuth2ClientCredential", TokenUri="not a url", ClientId="c", ClientSecret=SECRET
    )
    with pytest.raises(ConfigError, match="TokenUri: not an http"):
        build_auth(settings, "Fhir")


class TokenEndpoint:
    """MockTransport handler for both the token endpoint and the protected API."""

    def __init__(self, status: int = 200, body: dict[str, Any] | None = None) -> None:
        self.status = status
        self.body = (
            body if body is not None else {"access_token": "tok-1", "expires_in": "3600", "token_type": "Bearer"}
        )
        self.forms: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.forms.append({k: v[0] for k, v in parse_qs(request.content.decode()).items()})
        return httpx.Response(self.status, json=self.body)


def oauth2(kind: str = "OAuth2ClientCredential", **extra: Any) -> AuthenticationSettings:
    fields = {"TokenUri": "https://login.example/t/oauth2/token?x=1", "ClientId": "client-1", "ClientSecret": SECRET}
    return auth_settings(kind, kind, **(fields | extra))


def _api(auth: httpx.Auth | None) -> httpx.Client:
    assert auth is not None
    return httpx.Client(
        auth=auth, transport=httpx.MockTransport(lambda r: httpx.Response(200, text=r.headers["Authorization"]))
    )


def test_client_credentials_form_and_bearer_header() -> None:
    endpoint = TokenEndpoint()
    auth = build_auth(
        oauth2(Resource="https://fhir", Scope="https://fhir/.default"), "Fhir", transport=httpx.MockTransport(endpoint)
    )
    with _api(auth) as client:
        assert client.get("https://fhir/Patient").text == "Bearer tok-1"
        assert client.get("https://fhir/Patient").text == "Bearer tok-1"  # cached
    assert endpoint.forms == [
        {
            "grant_type": "client_credentials",
            "client_id": "client-1",
            "client_secret": SECRET,
            "resource": "https://fhir",
            "scope": "https://fhir/.default",
        }
    ]


def test_password_grant_sends_user_and_password() -> None:
    endpoint = TokenEndpoint()
    settings = oauth2("OAuth2UserPasswordCredential", Username="user-1", Password=PASSWORD, Scope="fhir")
    with _api(build_auth(settings, "Fhir", transport=httpx.MockTransport(endpoint))) as client:
        client.get("https://fhir/metadata")
    form = endpoint.forms[0]
    assert (form["grant_type"], form["username"], form["password"], form["scope"]) == (
        "password",
        "user-1",
        PASSWORD,
        "fhir",
    )
    assert "resource" not in form


@pytest.mark.parametrize(
    ("error", "setting"),
    [("invalid_client", "OAuth2ClientCredential:ClientSecret"), ("invalid_scope", "OAuth2ClientCredential:Scope")],
)
def test_refusal_names_the_setting_never_the_secret(error: str, setting: str) -> None:
    endpoint = TokenEndpoint(400, {"error": error, "error_description": f"bad {SECRET}"})
    with (
        _api(build_auth(oauth2(), "Fhir", transport=httpx.MockTransport(endpoint))) as client,
        pytest.raises(AuthError) as caught,
    ):
        client.get("https://fhir/metadata")
    message = str(caught.value)
    assert f"Fhir:Authentication:{setting}" in message and error in message
    assert SECRET not in message
    assert "x=1" not in message  # the token URI is shown without its query string


def test_token_endpoint_down_is_transient() -> None:
    with (
        _api(build_auth(oauth2(), "Fhir", transport=httpx.MockTransport(TokenEndpoint(503)))) as client,
        pytest.raises(TransientUpstreamError),
    ):
        client.get("https://fhir/metadata")


def test_expires_on_is_understood() -> None:
    endpoint = TokenEndpoint(body={"access_token": "tok-9", "expires_on": "4102444800"})
    with _api(build_auth(oauth2(), "Fhir", transport=httpx.MockTransport(endpoint))) as client:
        assert client.get("https://fhir/x").text == "Bearer tok-9"


def test_basic_sends_credentials_and_names_settings_on_401() -> None:
    settings = auth_settings("Basic", "BasicCredential", Username="orthanc", Password=PASSWORD)
    auth = build_auth(settings, "DicomWeb")
    assert isinstance(auth, BasicAuth) and PASSWORD not in repr(auth)
    headers: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers["Authorization"])
        return httpx.Response(401)

    with httpx.Client(auth=auth, transport=httpx.MockTransport(handler)) as client, pytest.raises(AuthError) as caught:
        client.get("http://orthanc/changes")
    assert headers == ["Basic " + base64.b64encode(f"orthanc:{PASSWORD}".encode()).decode()]
    assert "DicomWeb:Authentication:BasicCredential:Password" in str(caught.value)
    assert PASSWORD not in str(caught.value)
