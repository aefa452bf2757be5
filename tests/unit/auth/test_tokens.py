"""TokenCache and BearerAuth with an in-memory token source and httpx.MockTransport."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from dicomcast.auth.tokens import BearerAuth, Token, TokenCache, renewal_count
from dicomcast.errors import AuthError


class FakeSource:
    def __init__(self, lifetime: float = 3600.0, clock: Callable[[], float] = time.time) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self.calls: list[bool] = []
        self._lock = threading.Lock()

    def fetch(self, *, force: bool) -> Token:
        with self._lock:
            self.calls.append(force)
            now = self.clock()
            return Token(f"token-{len(self.calls)}", now + self.lifetime, now)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(auth: httpx.Auth, handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(auth=auth, transport=httpx.MockTransport(handler), base_url="http://fhir.test")


def test_token_is_cached_until_it_nears_expiry() -> None:
    clock = Clock()
    source = FakeSource(lifetime=3600, clock=clock)
    cache = TokenCache(source, "Fhir", clock=clock)
    assert cache.get() == "token-1"
    clock.now += 3600 - 301  # more than the 300 s margin left
    assert cache.get() == "token-1"
    clock.now += 2  # inside the margin: renewed before it expires
    assert cache.get() == "token-2"
    assert source.calls == [False, False]


def test_short_lived_token_renewed_at_half_life() -> None:
    clock = Clock()
    source = FakeSource(lifetime=60, clock=clock)
    cache = TokenCache(source, "Fhir", clock=clock)
    cache.get()
    clock.now += 29
    assert cache.get() == "token-1"
    clock.now += 1
    assert cache.get() == "token-2"


def test_renew_only_replaces_the_rejected_token() -> None:
    source = FakeSource()
    cache = TokenCache(source, "Fhir")
    first = cache.get()
    assert cache.renew(first) == "token-2"
    assert cache.renew(first) == "token-2"  # another thread already renewed it
    assert source.calls == [False, True]


def test_threads_share_one_fetch_and_hook_counts_renewals() -> None:
    clock = Clock()
    source = FakeSource(clock=clock)
    renewed: list[str] = []
    cache = TokenCache(source, "DicomWeb", on_renewed=renewed.append, clock=clock)
    before = renewal_count("DicomWeb")
    barrier = threading.Barrier(16)
    results: list[str] = []

    def work() -> None:
        barrier.wait()
        results.append(cache.get())

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {"token-1"}
    assert len(source.calls) == 1
    assert renewed == ["DicomWeb"]
    assert renewal_count("DicomWeb") == before + 1


def test_401_renews_once_and_retries_with_the_body() -> None:
    source = FakeSource()
    seen: list[tuple[str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers["Authorization"], request.content))
        return httpx.Response(200 if request.headers["Authorization"] == "Bearer token-2" else 401)

    auth = BearerAuth(TokenCache(source, "Fhir"), "Fhir", "Fhir:Authentication:X:Resource")
    with _client(auth, handler) as client:
        response = client.post("/Bundle", content=b'{"resourceType":"Bundle"}')
    assert response.status_code == 200
    assert seen == [("Bearer token-1", b'{"resourceType":"Bundle"}'), ("Bearer token-2", b'{"resourceType":"Bundle"}')]


def test_second_401_is_an_auth_error_naming_server_and_setting() -> None:
    auth = BearerAuth(
        TokenCache(FakeSource(), "Fhir"), "Fhir", "Fhir:Authentication:ManagedIdentityCredential:Resource"
    )
    with _client(auth, lambda r: httpx.Response(401)) as client, pytest.raises(AuthError) as caught:
        client.get("/Patient?identifier=secret-patient-id")
    message = str(caught.value)
    assert "Fhir" in message and "401 twice" in message
    assert "Fhir:Authentication:ManagedIdentityCredential:Resource" in message
    assert "token-" not in message and "secret-patient-id" not in message


def test_403_is_an_auth_error_about_the_role() -> None:
    source = FakeSource()
    auth = BearerAuth(TokenCache(source, "DicomWeb"), "DicomWeb", "DicomWeb:Authentication:X:Resource")
    with _client(auth, lambda r: httpx.Response(403)) as client, pytest.raises(AuthError, match=r"403.*role"):
        client.get("/v1/changefeed")
    assert source.calls == [False]  # a 403 is not a token problem: no renewal


def test_token_repr_hides_value() -> None:
    assert "sekret" not in repr(Token("sekret", 1.0, 0.0))
