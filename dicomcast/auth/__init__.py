"""Credentials -> `httpx.Auth` for the DICOM and FHIR servers, from DICOM Cast's settings.

`build_auth(settings, "Fhir")` checks that the chosen type has what it needs (one `ConfigError`
line per missing setting, naming its environment variable and Key Vault secret) and returns the
auth to give to `httpx.Client(auth=...)`, or None when authentication is off.
"""

from __future__ import annotations

from typing import TypeVar

import httpx
from pydantic import SecretStr

from dicomcast.auth.basic import BasicAuth
from dicomcast.auth.certificate import CertificateTokenSource
from dicomcast.auth.managed_identity import ManagedIdentityTokenSource
from dicomcast.auth.oauth2 import OAuth2Request, OAuth2TokenSource
from dicomcast.auth.tokens import BearerAuth, RenewalHook, TokenCache, renewal_count
from dicomcast.config import keys
from dicomcast.config.settings import (
    AuthenticationSettings,
    AuthenticationType,
    OAuth2ClientCredentialSettings,
    OAuth2UserPasswordCredentialSettings,
)
from dicomcast.errors import ConfigError
from dicomcast.logs import get_logger

__all__ = ["RenewalHook", "build_auth", "renewal_count"]

log = get_logger("dicomcast.auth")
T = TypeVar("T")


def build_auth(
    settings: AuthenticationSettings,
    server: str,
    *,
    on_token_renewed: RenewalHook | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Auth | None:
    """The auth for `server` ("DicomWeb" or "Fhir"); `transport` reaches the OAuth2 token endpoint."""
    kind = settings.effective_type
    prefix = f"{server}:Authentication"
    if kind is AuthenticationType.NONE:
        return None
    if kind is AuthenticationType.BASIC:
        basic = settings.basic_credential
        _require(f"{prefix}:BasicCredential", Username=basic.username, Password=basic.password)
        return BasicAuth(
            _given(basic.username, f"{prefix}:BasicCredential:Username"),
            _given(basic.password, f"{prefix}:BasicCredential:Password").get_secret_value(),
            server=server,
            setting=f"{prefix}:BasicCredential",
        )
    if kind is AuthenticationType.MANAGED_IDENTITY:
        mi = settings.managed_identity_credential
        setting = f"{prefix}:ManagedIdentityCredential"
        _require(setting, Resource=mi.resource)
        source = ManagedIdentityTokenSource(
            _given(mi.resource, f"{setting}:Resource"), mi.client_id, server=server, setting=setting
        )
        cache = TokenCache(source, server, on_renewed=on_token_renewed)
        return BearerAuth(cache, server, f"{setting}:Resource")
    if kind is AuthenticationType.OAUTH2_CLIENT_CERTIFICATE:
        cert = settings.oauth2_client_certificate_credential
        setting = f"{prefix}:OAuth2ClientCertificateCredential"
        _require(setting, TokenUri=cert.token_uri, ClientId=cert.client_id)
        if _blank(cert.certificate) and _blank(cert.certificate_path):
            raise ConfigError([_missing_line(f"{setting}:Certificate") + " (or CertificatePath)"])
        if _blank(cert.scope) and _blank(cert.resource):
            raise ConfigError([_missing_line(f"{setting}:Resource") + " (or Scope)"])
        signer = CertificateTokenSource(cert, server=server, setting=setting)
        cache = TokenCache(signer, server, on_renewed=on_token_renewed)
        return BearerAuth(cache, server, f"{setting}:Resource / {setting}:Scope")
    setting, request = _oauth2_request(settings, prefix)
    oauth2 = OAuth2TokenSource(request, server=server, setting=setting, transport=transport)
    cache = TokenCache(oauth2, server, on_renewed=on_token_renewed)
    return BearerAuth(cache, server, f"{setting}:Resource / {setting}:Scope")


def _oauth2_request(settings: AuthenticationSettings, prefix: str) -> tuple[str, OAuth2Request]:
    section: OAuth2ClientCredentialSettings | OAuth2UserPasswordCredentialSettings
    if settings.effective_type is AuthenticationType.OAUTH2_USER_PASSWORD:
        section = settings.oauth2_user_password_credential
        setting = f"{prefix}:OAuth2UserPasswordCredential"
        _require(
            setting,
            TokenUri=section.token_uri,
            ClientId=section.client_id,
            ClientSecret=section.client_secret,
            Username=section.username,
            Password=section.password,
        )
        username, password = section.username, section.password
    else:
        section = settings.oauth2_client_credential
        setting = f"{prefix}:OAuth2ClientCredential"
        _require(setting, TokenUri=section.token_uri, ClientId=section.client_id, ClientSecret=section.client_secret)
        username, password = None, None
    token_uri = _given(section.token_uri, f"{setting}:TokenUri")
    _check_token_uri(token_uri, f"{setting}:TokenUri")
    request = OAuth2Request(
        token_uri=token_uri,
        client_id=_given(section.client_id, f"{setting}:ClientId"),
        client_secret=_given(section.client_secret, f"{setting}:ClientSecret").get_secret_value(),
        resource=section.resource,
        scope=section.scope,
        username=username,
        password=password.get_secret_value() if password is not None else None,
    )
    return setting, request


def _require(setting: str, **values: object) -> None:
    missing = [name for name, value in values.items() if _blank(value)]
    if missing:
        raise ConfigError([_missing_line(f"{setting}:{name}") for name in missing])


def _given(value: T | None, key: str) -> T:
    """A value `_require` found present, typed as such (a None here is the same missing setting)."""
    if value is None:
        raise ConfigError([_missing_line(key)])
    return value


def _blank(value: object) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is None or (isinstance(value, str) and not value.strip())


def _missing_line(key: str) -> str:
    parts = key.split(":")
    return f"{key}: required for this AuthenticationType (set env {keys.env_name(parts)} or Key Vault secret {keys.secret_name(parts)})"


def _check_token_uri(uri: str, key: str) -> None:
    try:
        url = httpx.URL(uri)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        parts = key.split(":")
        raise ConfigError(
            [
                f"{key}: not an http(s) URL (set env {keys.env_name(parts)} or Key Vault secret {keys.secret_name(parts)})"
            ]
        )
    if url.scheme == "http" and url.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("token endpoint is not HTTPS; the client secret travels in clear text", setting=key)
