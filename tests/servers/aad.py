"""Fake OAuth2 token endpoint in Entra ID's shape (v1 `/{tenant}/oauth2/token` with `resource`,
v2 `/{tenant}/oauth2/v2.0/token` with `scope`), checking client secrets and user passwords.

Grants: client_credentials and password. Errors are Entra's: `invalid_client` (AADSTS7000215),
`invalid_grant` (AADSTS50126), `invalid_scope` (AADSTS1002012) when v2 gets no scope.
Tokens are `aad-token-<n>`; `issued` maps each to the client and audience it was made for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from tests.servers._base import JsonHandler, LoopbackServer, fake_of


@dataclass(frozen=True)
class Issued:
    client_id: str
    grant_type: str
    audience: str  # resource or scope


class _Handler(JsonHandler):
    def do_POST(self) -> None:
        fake: FakeAad = fake_of(self)
        form = self.read_form()
        path = urlparse(self.path).path
        if not path.endswith("/token"):
            self.send_json(404, {"error": "not_found"})
            return
        status, body = fake.token(form, v2="/v2.0/" in path)
        self.send_json(status, body)


class FakeAad(LoopbackServer):
    def __init__(self, *, expires_in: int = 3599, tls: tuple[Path, Path] | None = None) -> None:
        super().__init__(_Handler, tls=tls)
        self.clients = {"dicomcast-client": "client-secret-value-1"}
        self.users = {"sync-user": "user-password-value-1"}
        self.expires_in = expires_in
        self.issued: dict[str, Issued] = {}
        self.forms: list[dict[str, str]] = []

    def v1_token_uri(self, tenant: str = "test-tenant") -> str:
        return f"{self.url}/{tenant}/oauth2/token"

    def v2_token_uri(self, tenant: str = "test-tenant") -> str:
        return f"{self.url}/{tenant}/oauth2/v2.0/token"

    def token(self, form: dict[str, str], *, v2: bool) -> tuple[int, dict[str, object]]:
        with self.lock:
            self.forms.append(form)
            grant = form.get("grant_type", "")
            if grant not in ("client_credentials", "password"):
                return 400, {"error": "unsupported_grant_type", "error_description": "AADSTS70003"}
            if self.clients.get(form.get("client_id", "")) != form.get("client_secret"):
                return 401, {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                }
            if grant == "password" and self.users.get(form.get("username", "")) != form.get("password"):
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "AADSTS50126: Invalid username or password.",
                }
            audience = form.get("scope") if v2 else form.get("resource")
            if not audience:
                what = "scope" if v2 else "resource"
                return 400, {
                    "error": "invalid_scope" if v2 else "invalid_request",
                    "error_description": f"AADSTS1002012: no {what}",
                }
            token = f"aad-token-{len(self.issued) + 1}"
            self.issued[token] = Issued(form["client_id"], grant, audience)
            return 200, {
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "ext_expires_in": self.expires_in,
                "access_token": token,
            }
