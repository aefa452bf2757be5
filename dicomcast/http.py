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

from dicomcast.errors import (
    AuthError,
    ConflictError,
    PermanentUpstreamError,
    TransientUpstreamError,
)

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RequestHook = Callable[[httpx.Request, httpx.Response | None, float], None]


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
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        auth=auth,
        transport=transport,
        limits=limits,
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
