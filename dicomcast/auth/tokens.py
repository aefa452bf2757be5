"""Bearer tokens: a thread-safe cache renewed before expiry, and the httpx.Auth that sends them.

A `TokenSource` fetches a fresh token (managed identity, OAuth2, ...). `TokenCache` hands the same
token to every thread until it nears expiry, then exactly one thread renews it. `BearerAuth`
answers a 401 with one forced renewal and one retry; a second 401, or a 403, is an `AuthError`
that names the server and the settings to check. Token values never reach a log line or an error.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Protocol

import httpx

from dicomcast.errors import AuthError

# Renew this long before expiry, or at half the lifetime for short-lived tokens.
RENEW_MARGIN_SECONDS = 300.0

RenewalHook = Callable[[str], None]

_renewals: Counter[str] = Counter()
_renewals_lock = threading.Lock()


def renewal_count(server: str) -> int:
    """How many tokens were fetched for `server` ("DicomWeb", "Fhir") in this process."""
    with _renewals_lock:
        return _renewals[server]


def _count_renewal(server: str) -> None:
    with _renewals_lock:
        _renewals[server] += 1


@dataclass(frozen=True)
class Token:
    value: str = ""
    expires_at: float = 0.0  # epoch seconds
    issued_at: float = 0.0

    def __repr__(self) -> str:  # never show the value, not even in a traceback's locals
        return f"Token(expires_at={self.expires_at:.0f})"


class TokenSource(Protocol):
    def fetch(self, *, force: bool) -> Token:
        """A token; `force` asks for a new one even if the source has a cached token."""
        ...


class TokenCache:
    """One token shared by all threads; renewed before expiry or when a server rejected it."""

    def __init__(
        self,
        source: TokenSource,
        server: str,
        *,
        on_renewed: RenewalHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._server = server
        self._on_renewed = on_renewed
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = None

    def get(self) -> str:
        with self._lock:
            token = self._token
            if token is None or self._is_due(token):
                token = self._renew(force=False)
            return token.value

    def renew(self, rejected: str) -> str:
        """A new token unless another thread already replaced the rejected one."""
        with self._lock:
            token = self._token
            if token is None or token.value == rejected:
                token = self._renew(force=True)
            return token.value

    def _is_due(self, token: Token) -> bool:
        now = self._clock()
        lifetime = max(token.expires_at - token.issued_at, 0.0)
        margin = min(RENEW_MARGIN_SECONDS, lifetime / 2)
        return now >= token.expires_at - margin

    def _renew(self, *, force: bool) -> Token:
        token = self._token = self._source.fetch(force=force)
        _count_renewal(self._server)
        if self._on_renewed is not None:
            self._on_renewed(self._server)
        return token


class BearerAuth(httpx.Auth):
    """`Authorization: Bearer` from a `TokenCache`; one renewal and retry on 401."""

    requires_request_body = True  # the retry resends the body

    def __init__(self, cache: TokenCache, server: str, audience_hint: str) -> None:
        self._cache = cache
        self._server = server
        self._audience_hint = audience_hint  # the settings to check, named in errors

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._cache.get()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self._cache.renew(token)}"
            response = yield request
            if response.status_code == 401:
                raise AuthError(
                    f"{self._server}: {_where(request)} answered 401 twice, also to a new token; "
                    f"check {self._audience_hint} (the token's audience) and the identity's access"
                )
        if response.status_code == 403:
            raise AuthError(
                f"{self._server}: {_where(request)} answered 403 Forbidden to a valid token; grant the "
                f"identity a role on this server (e.g. DICOM Data Owner / FHIR Data Contributor) "
                f"or check {self._audience_hint}"
            )


def _where(request: httpx.Request) -> str:
    """Method and URL without query string (queries may carry PHI such as PatientID)."""
    url = request.url
    return f"{request.method} {url.scheme}://{url.netloc.decode('ascii', 'replace')}{url.path}"
