"""Fake Azure Key Vault secrets data plane over HTTPS on loopback (what `SecretClient` speaks).

- First request without a token: 401 with the Bearer challenge naming `https://vault.azure.net`.
- `accept(token)` decides which bearer tokens are good (default: any).
- `GET /secrets` lists (paged by `page_size`, with `nextLink`), `GET /secrets/{name}/[version]`
  reads; a disabled secret answers 403 `Forbidden` like the real service, and reads are recorded.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.servers._base import JsonHandler, LoopbackServer, fake_of

CHALLENGE = (
    'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001", '
    'resource="https://vault.azure.net"'
)


@dataclass
class Secret:
    value: str
    enabled: bool = True
    version: str = field(default_factory=lambda: uuid.uuid4().hex)
    updated: int = field(default_factory=lambda: int(time.time()))


class _Handler(JsonHandler):
    def do_GET(self) -> None:
        fake: FakeKeyVault = fake_of(self)
        if not self._authorized(fake):
            return
        url = urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        if parts == ["secrets"]:
            skip = int(parse_qs(url.query).get("$skiptoken", ["0"])[0])
            self.send_json(200, fake.page(skip))
        elif len(parts) in (2, 3) and parts[0] == "secrets":
            status, body = fake.read(parts[1])
            self.send_json(status, body)
        else:
            self.send_json(404, {"error": {"code": "NotFound", "message": "unknown path"}})

    def _authorized(self, fake: FakeKeyVault) -> bool:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and fake.accept(auth[7:]):
            return True
        body = {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}}
        self.send_json(401, body, {"WWW-Authenticate": CHALLENGE})
        return False


class FakeKeyVault(LoopbackServer):
    def __init__(self, cert: Path, key: Path, *, page_size: int = 3) -> None:
        super().__init__(_Handler, tls=(cert, key))
        self.secrets: dict[str, Secret] = {}
        self.page_size = page_size
        self.accept: Callable[[str], bool] = lambda token: True
        self.reads: list[str] = []  # names of secrets whose value was requested

    def set(self, name: str, value: str, *, enabled: bool = True) -> None:
        with self.lock:
            self.secrets[name] = Secret(value, enabled)

    def _id(self, name: str, version: str | None = None) -> str:
        return f"{self.url}/secrets/{name}" + (f"/{version}" if version else "")

    def _attributes(self, secret: Secret) -> dict[str, Any]:
        return {
            "enabled": secret.enabled,
            "created": secret.updated,
            "updated": secret.updated,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }

    def page(self, skip: int) -> dict[str, Any]:
        with self.lock:
            names = sorted(self.secrets)
            chunk = names[skip : skip + self.page_size]
            items = [{"id": self._id(n), "attributes": self._attributes(self.secrets[n]), "tags": {}} for n in chunk]
        more = skip + self.page_size < len(names)
        next_link = f"{self.url}/secrets?api-version=7.5&$skiptoken={skip + self.page_size}" if more else None
        return {"value": items, "nextLink": next_link}

    def read(self, name: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.reads.append(name)
            secret = self.secrets.get(name)
            if secret is None:
                return 404, {
                    "error": {
                        "code": "SecretNotFound",
                        "message": f"A secret with (name/id) {name} was not found in this key vault.",
                    }
                }
            if not secret.enabled:
                return 403, {
                    "error": {
                        "code": "Forbidden",
                        "message": "Operation get is not allowed on a disabled secret.",
                        "innererror": {"code": "SecretDisabled"},
                    }
                }
            return 200, {
                "value": secret.value,
                "id": self._id(name, secret.version),
                "attributes": self._attributes(secret),
                "tags": {},
            }
