"""DICOM Cast's `OAuth2ClientCertificateCredential`: azure-identity's CertificateCredential signs a
JWT client assertion with the certificate's private key and sends it to the Entra token endpoint
named by `TokenUri` (`https://<authority>/<tenant>/oauth2/v2.0/token`: its host is the authority,
its first segment the tenant). The scope is `Scope`, else `<Resource>/.default`.

The certificate comes from `Certificate` (PEM text, or base64 PKCS#12 as Key Vault hands a
certificate out through its secret) or `CertificatePath`; it never reaches a log line or an error.
"""

from __future__ import annotations

import base64
import binascii
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dicomcast.auth.managed_identity import scope_for
from dicomcast.auth.tokens import Token
from dicomcast.config.keyvault import is_loopback
from dicomcast.config.settings import OAuth2ClientCertificateCredentialSettings
from dicomcast.errors import AuthError, ConfigError


def certificate_bytes(section: OAuth2ClientCertificateCredentialSettings, setting: str) -> bytes:
    """PEM or PKCS#12 bytes of the certificate with its key."""
    if section.certificate is not None and section.certificate.get_secret_value().strip():
        text = section.certificate.get_secret_value().strip()
        if text.startswith("-----BEGIN"):
            return text.encode()
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                [f"{setting}:Certificate: neither PEM text nor base64 PKCS#12 ({_where(setting, 'Certificate')})"]
            ) from None
    path = Path(section.certificate_path or "")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [f"{setting}:CertificatePath: cannot read {path} ({exc.strerror}) ({_where(setting, 'CertificatePath')})"]
        ) from None


def authority_and_tenant(token_uri: str, setting: str) -> tuple[str, str]:
    parts = urlsplit(token_uri.strip())
    segments = [segment for segment in parts.path.split("/") if segment]
    if parts.scheme != "https" or not parts.netloc or len(segments) < 2 or segments[1] != "oauth2":
        raise ConfigError(
            [
                f"{setting}:TokenUri: the certificate credential needs an Entra ID token endpoint like "
                f"https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token ({_where(setting, 'TokenUri')})"
            ]
        )
    return parts.netloc, segments[0]


class CertificateTokenSource:
    def __init__(self, section: OAuth2ClientCertificateCredentialSettings, *, server: str, setting: str) -> None:
        token_uri, client_id = section.token_uri, section.client_id
        if not token_uri or not client_id:  # build_auth names each missing setting before this
            raise ConfigError([f"{setting}:TokenUri and ClientId are required ({_where(setting, 'TokenUri')})"])
        self._authority, self._tenant = authority_and_tenant(token_uri, setting)
        self._scope = section.scope or scope_for(section.resource or "")
        self._client_id = client_id
        self._certificate = certificate_bytes(section, setting)
        password = section.certificate_password
        self._password = password.get_secret_value().encode() if password and password.get_secret_value() else None
        self._server = server
        self._setting = setting
        self._credential: Any = None

    def fetch(self, *, force: bool) -> Token:
        from azure.core.exceptions import AzureError

        try:
            access = self._get_credential().get_token(self._scope)
        except (AzureError, ValueError) as exc:
            raise AuthError(
                f"{self._server}: the token endpoint refused the certificate ({type(exc).__name__}: "
                f"{_first_line(exc)}); check {self._setting}:ClientId, :Certificate and :TokenUri, and "
                "that the certificate is registered on the app"
            ) from None
        return Token(access.token, float(access.expires_on), time.time())

    def _get_credential(self) -> Any:
        if self._credential is None:
            from azure.identity import CertificateCredential

            self._credential = CertificateCredential(
                self._tenant,
                self._client_id,
                certificate_data=self._certificate,
                password=self._password,
                authority=self._authority,
                # MSAL would ask login.microsoftonline.com about an authority it does not know
                disable_instance_discovery=is_loopback(urlsplit(f"https://{self._authority}").hostname),
            )
        return self._credential


def _where(setting: str, name: str) -> str:
    parts = [*setting.split(":"), name]
    return f"set env {'__'.join(parts)} or Key Vault secret {'--'.join(parts)}"


def _first_line(exc: Exception) -> str:
    """azure-identity's reason (it names AADSTS codes, never the key or a token)."""
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else "no reason given"
