"""HTTP Basic (Orthanc's users): a refused password is an `AuthError` naming the settings."""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Generator

import httpx

from dicomcast.auth.tokens import _where
from dicomcast.errors import AuthError


class BasicAuth(httpx.Auth):
    def __init__(self, username: str, password: str, *, server: str, setting: str) -> None:
        self._header = "Basic " + b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._server = server
        self._setting = setting

    def __repr__(self) -> str:
        return f"BasicAuth(server={self._server!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        response = yield request
        if response.status_code in (401, 403):
            raise AuthError(
                f"{self._server}: {_where(request)} refused the user name and password "
                f"(HTTP {response.status_code}); check {self._setting}:Username and {self._setting}:Password"
            )
