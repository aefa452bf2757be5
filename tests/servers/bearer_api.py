"""A loopback HTTP API that demands a bearer token (stands in for a DICOM or FHIR server).

`accepted` holds the good tokens (or set `accept`); `forbidden` tokens get 403; anything else
401 with a Bearer challenge. `seen` records the token of every request, in order.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.servers._base import JsonHandler, LoopbackServer, fake_of


class _Handler(JsonHandler):
    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer(self.read_body())

    def _answer(self, body: bytes = b"") -> None:
        fake: BearerApi = fake_of(self)
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        with fake.lock:
            fake.seen.append(token)
            fake.bodies.append(body)
        if token and token in fake.forbidden:
            self.send_json(
                403, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden"}]}
            )
        elif token and fake.accept(token):
            self.send_json(200, {"ok": True, "path": self.path})
        else:
            challenge = 'Bearer realm="test", error="invalid_token"'
            self.send_json(401, {"error": "invalid_token"}, {"WWW-Authenticate": challenge})


class BearerApi(LoopbackServer):
    def __init__(self) -> None:
        super().__init__(_Handler)
        self.accepted: set[str] = set()
        self.forbidden: set[str] = set()
        self.accept: Callable[[str], bool] = lambda token: token in self.accepted
        self.seen: list[str] = []
        self.bodies: list[bytes] = []
