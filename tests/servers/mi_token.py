"""Fake managed-identity token endpoint (App Service shape: IDENTITY_ENDPOINT + IDENTITY_HEADER).

Point azure-identity at it with `monkeypatch.setenv("IDENTITY_ENDPOINT", fake.endpoint)` and
`IDENTITY_HEADER=fake.header`. Tokens are `mi-token-<n>` unless `queue` holds the next ones;
`expires_in` sets their lifetime. Every request is recorded (resource, client_id).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

from tests.servers._base import JsonHandler, LoopbackServer, fake_of

IDENTITY_HEADER = "mi-test-identity-header"


@dataclass(frozen=True)
class TokenRequest:
    resource: str
    client_id: str | None
    token: str


class _Handler(JsonHandler):
    def do_GET(self) -> None:
        fake: MiTokenServer = fake_of(self)
        query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        if self.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER or "resource" not in query:
            self.send_json(400, {"error": "invalid_request", "error_description": "bad identity header or no resource"})
            return
        if fake.refuse:
            self.send_json(400, {"error": "invalid_resource", "error_description": "identity not found"})
            return
        token = fake.issue(query["resource"], query.get("client_id"))
        now = int(time.time())
        body = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_on": str(now + fake.expires_in),
            "expires_in": str(fake.expires_in),
            "resource": query["resource"],
        }
        self.send_json(200, body)


class MiTokenServer(LoopbackServer):
    def __init__(self, *, expires_in: int = 3600) -> None:
        super().__init__(_Handler)
        self.endpoint = f"{self.url}/msi/token"
        self.header = IDENTITY_HEADER
        self.expires_in = expires_in
        self.queue: list[str] = []  # next tokens to hand out, first first
        self.requests: list[TokenRequest] = []
        self.refuse = False

    def issue(self, resource: str, client_id: str | None) -> str:
        with self.lock:
            token = self.queue.pop(0) if self.queue else f"mi-token-{len(self.requests) + 1}"
            self.requests.append(TokenRequest(resource, client_id, token))
            return token

    @property
    def issued(self) -> list[str]:
        return [r.token for r in self.requests]
