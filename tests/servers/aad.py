"""Fake OAuth2 token endpoint in Entra ID's shape (v1 `/{tenant}/oauth2/token` with `resource`,
v2 `/{tenant}/oauth2/v2.0/token` with `scope`), checking client secrets and user passwords.

Grants: client_credentials and password. Errors are Entra's: `invalid_client` (AADSTS7000215),
`invalid_grant` (AADSTS50126), `invalid_scope` (AADSTS1002012) when v2 gets no scope.
Tokens are `aad-token-<n>`; `issued` maps each to the client and audience it was made for.

Certificate credentials (RFC 7523 `client_assertion`, as MSAL sends them): the JWT must be signed
by the key of a certificate registered in `certificates` (client id -> certificate), be addressed
to the token endpoint and not be expired (AADSTS700027 otherwise). MSAL first reads the tenant's
OpenID configuration, which is served too.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.servers._base import JsonHandler, LoopbackServer, fake_of


@dataclass(frozen=True)
class Issued:
    client_id: str
    grant_type: str
    audience: str  # resource or scope


class _Handler(JsonHandler):
    def do_GET(self) -> None:
        fake: FakeAad = fake_of(self)
        path = urlparse(self.path).path
        if not path.endswith("/v2.0/.well-known/openid-configuration"):
            self.send_json(404, {"error": "not_found"})
            return
        tenant = path.strip("/").split("/")[0]
        self.send_json(200, fake.openid_configuration(tenant))

    def do_POST(self) -> None:
        fake: FakeAad = fake_of(self)
        form = self.read_form()
        path = urlparse(self.path).path
        if not path.endswith("/token"):
            self.send_json(404, {"error": "not_found"})
            return
        status, body = fake.token(form, v2="/v2.0/" in path, endpoint=f"{fake.url}{path}")
        self.send_json(status, body)


class FakeAad(LoopbackServer):
    def __init__(self, *, expires_in: int = 3599, tls: tuple[Path, Path] | None = None) -> None:
        super().__init__(_Handler, tls=tls)
        self.clients = {"dicomcast-client": "client-secret-value-1"}
        self.users = {"sync-user": "user-password-value-1"}
        self.expires_in = expires_in
        self.issued: dict[str, Issued] = {}
        self.forms: list[dict[str, str]] = []
        self.certificates: dict[str, x509.Certificate] = {}

    def v1_token_uri(self, tenant: str = "test-tenant") -> str:
        return f"{self.url}/{tenant}/oauth2/token"

    def v2_token_uri(self, tenant: str = "test-tenant") -> str:
        return f"{self.url}/{tenant}/oauth2/v2.0/token"

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        base = f"{self.url}/{tenant}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "issuer": f"{base}/v2.0",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
        }

    def token(self, form: dict[str, str], *, v2: bool, endpoint: str = "") -> tuple[int, dict[str, object]]:
        with self.lock:
            self.forms.append(form)
            grant = form.get("grant_type", "")
            if grant not in ("client_credentials", "password"):
                return 400, {"error": "unsupported_grant_type", "error_description": "AADSTS70003"}
            if "client_assertion" in form:
                if not self._assertion_ok(form, endpoint):
                    return 401, {"error": "invalid_client", "error_description": "AADSTS700027: invalid assertion"}
            elif self.clients.get(form.get("client_id", "")) != form.get("client_secret"):
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

    def _assertion_ok(self, form: dict[str, str], endpoint: str) -> bool:
        client_id = form.get("client_id", "")
        certificate = self.certificates.get(client_id)
        if certificate is None or form.get("client_assertion_type") != JWT_BEARER:
            return False
        try:
            head, body, signature = (_unb64(part) for part in form["client_assertion"].split("."))
            header, claims = json.loads(head), json.loads(body)
        except ValueError:
            return False
        signed = form["client_assertion"].rsplit(".", 1)[0].encode()
        if not _verify(certificate, header.get("alg", ""), signed, signature):
            return False
        return (
            claims.get("aud") == endpoint
            and claims.get("iss") == claims.get("sub") == client_id
            and (float(claims.get("exp", 0)) > time.time())
        )


JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _verify(certificate: x509.Certificate, alg: str, signed: bytes, signature: bytes) -> bool:
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or alg not in ("RS256", "PS256"):
        return False
    scheme: padding.AsymmetricPadding = (
        padding.PKCS1v15()
        if alg == "RS256"
        else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
    )
    try:
        key.verify(signature, signed, scheme, hashes.SHA256())
    except InvalidSignature:
        return False
    return True
