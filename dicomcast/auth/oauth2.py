"""OAuth2 token requests (RFC 6749 §4.3 password, §4.4 client credentials) to any token endpoint.

Like DICOM Cast's Microsoft.Health.Client, the client id and secret go in the form body with
`resource` (Entra v1, many others) and/or `scope` (Entra v2, OAuth2 servers). The error an
operator sees names the server, the endpoint (no query string), the OAuth2 error code and the
setting to fix; it never carries the secret, the password or a token.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from dicomcast.auth.tokens import Token
from dicomcast.errors import AuthError, TransientUpstreamError

DEFAULT_LIFETIME_SECONDS = 3600.0
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_TIMEOUT = httpx.Timeout(30.0)
# OAuth2 error code -> the setting that usually fixes it.
_HINTS = {
    "invalid_client": "ClientId and ClientSecret",
    "unauthorized_client": "ClientId (the client may not use this grant type)",
    "invalid_scope": "Scope (and Resource)",
    "invalid_target": "Resource",
    "invalid_grant": "Username and Password",
    "invalid_request": "Resource, Scope and ClientId",
}


@dataclass(frozen=True)
class OAuth2Request:
    token_uri: str
    client_id: str
    client_secret: str = field(repr=False)
    resource: str | None = None
    scope: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def form(self) -> dict[str, str]:
        grant = "password" if self.username is not None else "client_credentials"
        data = {"grant_type": grant, "client_id": self.client_id, "client_secret": self.client_secret}
        optional = {
            "resource": self.resource,
            "scope": self.scope,
            "username": self.username,
            "password": self.password,
        }
        data.update({k: v for k, v in optional.items() if v})
        return data


class OAuth2TokenSource:
    def __init__(
        self,
        request: OAuth2Request,
        *,
        server: str,
        setting: str,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._request = request
        self._server = server
        self._setting = setting  # e.g. "Fhir:Authentication:OAuth2ClientCredential"
        self._client = httpx.Client(timeout=_TIMEOUT, transport=transport)

    def fetch(self, *, force: bool) -> Token:
        endpoint = _without_query(self._request.token_uri)
        try:
            response = self._client.post(
                self._request.token_uri,
                data=self._request.form(),
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise TransientUpstreamError(
                f"{self._server} token endpoint", f"{endpoint} unreachable ({type(exc).__name__})"
            ) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientUpstreamError(f"{self._server} token endpoint", endpoint, status=response.status_code)
        body = _json(response)
        if response.status_code != 200 or not isinstance(body.get("access_token"), str):
            raise AuthError(self._refusal(endpoint, response.status_code, body))
        now = time.time()
        return Token(body["access_token"], _expiry(body, now), now)

    def _refusal(self, endpoint: str, status: int, body: dict[str, Any]) -> str:
        error = body.get("error")
        # An OAuth2 error code is a token (RFC 6749 5.2); anything else is server text and not shown.
        code = error if isinstance(error, str) and _ERROR_CODE.match(error) else "no access_token in the answer"
        hint = _HINTS.get(code, "TokenUri, ClientId, ClientSecret, Resource and Scope")
        names = ", ".join(f"{self._setting}:{part.strip()}" for part in _setting_names(hint))
        return f"{self._server}: token endpoint {endpoint} refused the request (HTTP {status}, {code}); check {names}"


def _setting_names(hint: str) -> list[str]:
    """`"ClientId and ClientSecret"` -> ["ClientId", "ClientSecret"], keeping any note in brackets."""
    text = hint.replace(" and ", ", ")
    return [part for part in text.split(",") if part.strip()]


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _expiry(body: dict[str, Any], now: float) -> float:
    """`expires_in` (seconds, maybe a string) or Entra v1's `expires_on` (epoch); else one hour."""
    for key, relative in (("expires_in", True), ("expires_on", False)):
        try:
            value = float(body[key])
        except (KeyError, TypeError, ValueError):
            continue
        return now + value if relative else value
    return now + DEFAULT_LIFETIME_SECONDS


def _without_query(url: str) -> str:
    parsed = httpx.URL(url)
    return str(parsed.copy_with(query=None, fragment=None, username=None, password=None))
