"""Managed identity tokens through azure-identity's `ManagedIdentityCredential`.

The scope is `<Resource>/.default` (DICOM Cast's `ManagedIdentityCredential:Resource`). The
credential keeps its own cache; a forced renewal (after a 401) passes a claims challenge, which
makes MSAL fetch a new token instead of returning the cached one the server just refused.
"""

from __future__ import annotations

import json
import time
from typing import Any

from dicomcast.auth.tokens import Token
from dicomcast.errors import AuthError

# Any non-empty claims challenge makes MSAL skip its cache; the endpoint ignores its content.
_FRESH_TOKEN_CLAIMS = json.dumps({"access_token": {"nbf": {"essential": True, "value": "0"}}})


def scope_for(resource: str) -> str:
    """`https://host` -> `https://host/.default`; a scope given as such is kept."""
    resource = resource.strip()
    if resource.endswith("/.default"):
        return resource
    return f"{resource.rstrip('/')}/.default"


class ManagedIdentityTokenSource:
    def __init__(self, resource: str, client_id: str | None, *, server: str, setting: str) -> None:
        self._scope = scope_for(resource)
        self._client_id = client_id or None
        self._server = server
        self._setting = setting
        self._credential: Any = None  # built on first use: the constructor reads the environment

    def fetch(self, *, force: bool) -> Token:
        from azure.core.exceptions import AzureError

        if self._credential is None:
            from azure.identity import ManagedIdentityCredential

            self._credential = ManagedIdentityCredential(client_id=self._client_id)
        claims = _FRESH_TOKEN_CLAIMS if force else None
        try:
            access = self._credential.get_token(self._scope, claims=claims)
        except AzureError as exc:
            raise AuthError(
                f"{self._server}: managed identity could not get a token for {self._scope} "
                f"({type(exc).__name__}: {_first_line(exc)}); check {self._setting}:Resource and "
                f"{self._setting}:ClientId, and that the container has a managed identity"
            ) from None
        return Token(access.token, float(access.expires_on), time.time())


def _first_line(exc: Exception) -> str:
    """The reason azure-identity gives, short (it holds no secret: managed identity has none)."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no reason given"
