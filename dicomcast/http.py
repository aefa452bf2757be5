"""HTTP plumbing shared by the DICOM and FHIR clients: one pool per server, error translation.

httpx errors are mapped here, at the boundary, onto dicomcast's tree (errors.py): transport errors,
408, 429 and 5xx are transient; 412 is a conflict; 401/403 an AuthError; other 4xx permanent.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
)
from tenacity.wait import wait_exponential_jitter

from dicomcast.errors import (
    AuthError,
    ConflictError,
    PermanentUpstreamError,
    TransientUpstreamError,
)

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})
RequestHook = Callable[[httpx.Request, httpx.Response | None, float], None]


class RetryingTransport(httpx.BaseTransport):
    """Retries idempotent reads (GET/HEAD) on network errors, 408, 429 and 5xx a few times, with
    jittered backoff and Retry-After honoured (capped), before the caller sees the failure.

    A page read is dozens of requests: retrying only the whole page would rarely get one through a
    flaky server. Writes are not retried here; the worker retries a study's transaction as a whole.
    """

    def __init__(self, inner: httpx.BaseTransport, *, attempts: int = 4, max_wait: float = 5.0) -> None:
        self._inner = inner
        self._attempts = attempts
        self._max_wait = max_wait
        self._backoff = wait_exponential_jitter(initial=0.2, max=max_wait, jitter=0.3)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method not in IDEMPOTENT_METHODS:
            return self._inner.handle_request(request)
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception_type(httpx.TransportError) | retry_if_result(_is_transient),
            before_sleep=_close_response,
            retry_error_callback=_last_outcome,
            reraise=True,
        )
        response: httpx.Response = retrying(self._inner.handle_request, request)
        return response

    def _wait(self, state: RetryCallState) -> float:
        delay = float(self._backoff(state))
        if state.outcome is not None and not state.outcome.failed:
            hinted = retry_after(state.outcome.result())
            if hinted is not None:
                delay = max(delay, min(hinted, self._max_wait * 6))
        return delay

    def close(self) -> None:
        self._inner.close()


def _is_transient(response: httpx.Response) -> bool:
    return response.status_code in TRANSIENT_STATUS


def _close_response(state: RetryCallState) -> None:
    if state.outcome is not None and not state.outcome.failed:
        state.outcome.result().close()


def _last_outcome(state: RetryCallState) -> httpx.Response:
    """Out of attempts: hand the last answer (or error) to the caller, which classifies it."""
    assert state.outcome is not None
    response: httpx.Response = state.outcome.result()
    return response


def make_client(
    base_url: str,
    *,
    auth: httpx.Auth | None = None,
    transport: httpx.BaseTransport | None = None,
    pool_size: int = 10,
    timeout: float = 60.0,
    on_request: RequestHook | None = None,
) -> httpx.Client:
    """A keep-alive client whose pool matches the worker's concurrency."""
    limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
    hooks: dict[str, list[Callable[..., None]]] = {}
    if on_request is not None:
        hooks = _timing_hooks(on_request)
    inner = transport or httpx.HTTPTransport(limits=limits)
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        auth=auth,
        transport=RetryingTransport(inner),
        timeout=httpx.Timeout(timeout, connect=10.0),
        event_hooks=hooks,
    )


def _timing_hooks(on_request: RequestHook) -> dict[str, list[Callable[..., None]]]:
    def started(request: httpx.Request) -> None:
        request.extensions["dicomcast_started"] = time.perf_counter()

    def finished(response: httpx.Response) -> None:
        began = response.request.extensions.get("dicomcast_started", time.perf_counter())
        on_request(response.request, response, time.perf_counter() - began)

    return {"request": [started], "response": [finished]}


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def path_of(request: httpx.Request) -> str:
    """The request path without its query (queries may carry patient identifiers)."""
    return f"{request.method} {request.url.path}"


def check(service: str, response: httpx.Response, setting_hint: str) -> httpx.Response:
    """Raise the matching dicomcast error for a non-2xx response; return it otherwise."""
    status = response.status_code
    if status < 400:
        return response
    where = path_of(response.request)
    if status in TRANSIENT_STATUS:
        raise TransientUpstreamError(service, where, status=status, retry_after=retry_after(response))
    if status == 412:
        raise ConflictError(service, f"{where}: version conflict", status=status)
    if status in (401, 403):
        raise AuthError(
            f"{service} answered {status} to {where}: check {setting_hint} "
            "(audience/Resource, Scope, and the identity's role assignment)"
        )
    raise PermanentUpstreamError(service, f"{where}: {_outcome(response)}", status=status)


def _outcome(response: httpx.Response) -> str:
    """The diagnostics of an OperationOutcome, if any, shortened (they name elements, not values)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    issues = body.get("issue", []) if isinstance(body, dict) else []
    texts = [str(i.get("diagnostics") or i.get("code") or "") for i in issues if isinstance(i, dict)]
    return ("; ".join(t for t in texts if t) or response.reason_phrase)[:500]


def send(service: str, client: httpx.Client, request: httpx.Request, setting_hint: str) -> httpx.Response:
    """Send and translate transport errors to TransientUpstreamError."""
    try:
        response = client.send(request)
    except httpx.TimeoutException:
        raise TransientUpstreamError(service, f"{path_of(request)}: timed out") from None
    except httpx.TransportError as exc:
        raise TransientUpstreamError(service, f"{path_of(request)}: {type(exc).__name__}") from None
    return check(service, response, setting_hint)
