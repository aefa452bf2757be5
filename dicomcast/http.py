"""The HTTP boundary of every server dicomcast calls (FHIR, Azure DICOM, Orthanc): one pool per
server, and the one place that decides what an answer means.

Every answer is untrusted. Classification (`status_kind`), for all servers alike:

    status                        meaning                          raised
    2xx with a parsable body      success (204/empty/HTML/cut-off  - (TransientUpstreamError when
      of the expected media type    JSON where JSON is expected)     the body is not what was expected)
    3xx (any, 304 included)       a proxy/gateway redirected       UpstreamRedirectError (never followed)
    401, 403, 407                 credentials refused              AuthError
    404, 410                      the resource is gone             PermanentUpstreamError (status kept;
                                                                     callers that read one resource
                                                                     treat it as "gone")
    409, 412                      someone else changed it          ConflictError
    408, 421, 425, 429            try again                        TransientUpstreamError
    other 4xx (400, 422, ...)     this request is wrong            PermanentUpstreamError
    5xx (all, 501/505 included)   the server failed, not the       TransientUpstreamError
                                    request: never a failure row
    511                           a captive portal wants sign-in   AuthError

A body that arrived whole but can never be decoded (nesting beyond the parser's depth, integers past
Python's digit limit) is an UnparseableBodyError: retrying reads the same bytes.

Retries stay bounded: RetryingTransport retries reads (GET/HEAD) on network errors and transient
statuses a few times; the worker's `call_with_retry` retries a page or a study a few more, within
RetryConfiguration:*; past that the cycle fails with its checkpoint kept.

Messages carry no PHI and no secrets: method, URL without query and without user info, status code
with its standard phrase (a server's own reason phrase and error text are never kept), and from a
FHIR OperationOutcome only severity, issue code and element path.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from http import HTTPStatus
from typing import Any

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
    UnparseableBodyError,
    UpstreamRedirectError,
)
from dicomcast.http_outcome import outcome_summary
from dicomcast.urls import redact_url, split_query

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})
GONE_STATUS = frozenset({404, 410})
RequestHook = Callable[[httpx.Request, httpx.Response | None, float], None]


class StatusKind(Enum):
    SUCCESS = "success"
    REDIRECT = "redirect"
    AUTH = "auth"
    GONE = "gone"
    CONFLICT = "conflict"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


def status_kind(status: int) -> StatusKind:
    """The table in the module docstring, as code."""
    if 200 <= status < 300:
        return StatusKind.SUCCESS
    if 300 <= status < 400:
        return StatusKind.REDIRECT
    if status in (401, 403, 407, 511):
        return StatusKind.AUTH
    if status in GONE_STATUS:
        return StatusKind.GONE
    if status in (409, 412):
        return StatusKind.CONFLICT
    if status in (408, 421, 425, 429) or status >= 500:
        return StatusKind.TRANSIENT
    return StatusKind.PERMANENT  # other 4xx, and 1xx that httpx did not consume


@dataclass(frozen=True)
class Upstream:
    """One server as its client sees it: how messages name it and the settings an operator fixes."""

    service: str  # "FHIR server", "DICOMweb", "Orthanc"
    setting: str  # the setting holding its URL, e.g. "Fhir:Endpoint"
    auth_hint: str  # the settings to check on 401/403, e.g. "Fhir:Authentication:*"

    def env_and_secret(self) -> str:
        """`Fhir:Endpoint` -> "env Fhir__Endpoint, Key Vault secret Fhir--Endpoint"."""
        if "*" in self.setting:
            return "Sources:<n>:... in the settings file"
        return f"env {self.setting.replace(':', '__')}, Key Vault secret {self.setting.replace(':', '--')}"


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
        self._backoff = wait_exponential_jitter(multiplier=0.2, max=max_wait, jitter=0.3)

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
    return status_kind(response.status_code) is StatusKind.TRANSIENT


def _close_response(state: RetryCallState) -> None:
    if state.outcome is not None and not state.outcome.failed:
        state.outcome.result().close()


def _last_outcome(state: RetryCallState) -> httpx.Response:
    """Out of attempts: hand the last answer (or error) to the caller, which classifies it."""
    if state.outcome is None:  # tenacity calls this after at least one attempt
        raise RuntimeError("retry ended before any attempt")
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
    """A keep-alive client whose pool matches the worker's concurrency. Redirects are never
    followed: the credentials would go wherever a proxy or gateway points. A query in `base_url`
    (a gateway's key) is sent with every request; user info is sent as Basic credentials."""
    limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
    hooks: dict[str, list[Callable[..., None]]] = {}
    if on_request is not None:
        hooks = _timing_hooks(on_request)
    inner = transport or httpx.HTTPTransport(limits=limits)
    base, query = split_query(base_url)  # httpx would glue paths onto a base URL's query
    return httpx.Client(
        base_url=base.rstrip("/"),
        params=httpx.QueryParams(query),
        auth=auth,
        transport=RetryingTransport(inner),
        timeout=httpx.Timeout(timeout, connect=10.0),
        event_hooks=hooks,
        follow_redirects=False,
    )


def _timing_hooks(on_request: RequestHook) -> dict[str, list[Callable[..., None]]]:
    def started(request: httpx.Request) -> None:
        request.extensions["dicomcast_started"] = time.perf_counter()

    def finished(response: httpx.Response) -> None:
        began = response.request.extensions.get("dicomcast_started", time.perf_counter())
        on_request(response.request, response, time.perf_counter() - began)

    return {"request": [started], "response": [finished]}


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
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
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def where(request: httpx.Request) -> str:
    """Method and URL without query (queries may carry patient identifiers) and without user info."""
    return f"{request.method} {redact_url(str(request.url.copy_with(query=None, fragment=None)))}"


def _phrase(status: int) -> str:
    """The standard reason phrase: a server's own phrase is free text and is never shown."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "non-standard status"


def check(upstream: Upstream, response: httpx.Response, *, allow: Collection[int] = ()) -> httpx.Response:
    """Return a 2xx response (or one whose status the caller reads, `allow`); raise otherwise."""
    status = response.status_code
    kind = status_kind(status)
    if kind is StatusKind.SUCCESS or status in allow:
        return response
    at = where(response.request)
    if kind is StatusKind.REDIRECT:
        raise _redirect_error(upstream, response, at)
    if kind is StatusKind.AUTH:
        raise AuthError(_auth_message(upstream, status, at))
    if kind is StatusKind.CONFLICT:
        raise ConflictError(upstream.service, f"{at}: version conflict", status=status)
    if kind is StatusKind.TRANSIENT:
        raise TransientUpstreamError(
            upstream.service, f"{at} answered {_phrase(status)}", status=status, retry_after=retry_after(response)
        )
    raise PermanentUpstreamError(
        upstream.service, f"{at} answered {_phrase(status)}{_outcome(response)}", status=status
    )


def _redirect_error(upstream: Upstream, response: httpx.Response, at: str) -> UpstreamRedirectError:
    target = response.headers.get("Location", "")
    to = ""
    try:
        parsed = httpx.URL(target) if target else None
        if parsed is not None and parsed.host:
            to = f" to {parsed.scheme}://{parsed.host}"  # the origin only: its path/query may hold tokens
    except httpx.InvalidURL:
        to = ""
    return UpstreamRedirectError(
        upstream.service,
        f"{at} was redirected{to} (HTTP {response.status_code}): a proxy or gateway between dicomcast and "
        f"the server redirected (a sign-in page?). Redirects are not followed; set {upstream.setting} "
        f"({upstream.env_and_secret()}) to the server's own URL",
        status=response.status_code,
    )


def _auth_message(upstream: Upstream, status: int, at: str) -> str:
    if status in (407, 511):
        return (
            f"{upstream.service} HTTP {status} from {at}: a proxy or captive portal between dicomcast and "
            f"the server asks for its own sign-in; {upstream.setting} must reach the server directly"
        )
    return (
        f"{upstream.service} answered {status} to {at}: check {upstream.auth_hint} "
        "(audience/Resource, Scope, and the identity's role assignment)"
    )


def _outcome(response: httpx.Response) -> str:
    """Severity, code and element path of a FHIR OperationOutcome (never its free text)."""
    if not _is_json_media(response.headers.get("Content-Type", "")):
        return ""
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        return ""
    summary = outcome_summary(body)
    return f": {summary}" if summary else ""


def send(
    upstream: Upstream, client: httpx.Client, request: httpx.Request, *, allow: Collection[int] = ()
) -> httpx.Response:
    """Send, then `check`; transport errors (reset, refused, timeout, cut body) are transient."""
    try:
        response = _unbound(client.send(request))
    except httpx.TimeoutException as exc:
        raise TransientUpstreamError(upstream.service, f"{where(request)} timed out ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise TransientUpstreamError(
            upstream.service, f"{where(request)} could not be reached ({type(exc).__name__})"
        ) from None
    return check(upstream, response, allow=allow)


def _unbound(response: httpx.Response) -> httpx.Response:
    """The response (its body read: `send` does not stream), closed, with an empty stream in place of
    its own. httpx's response and stream refer to each other, so a response and its whole body lived
    until the cyclic collector ran, which `tune_collector` makes rare: twelve feed pages of CT
    metadata (30 MB) were found alive at once."""
    response.close()  # returns the connection to the pool if the transport had not yet
    response.stream = httpx.ByteStream(b"")
    return response


def _is_json_media(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


_read_here = threading.local()  # JSON bytes read by this thread: json_bytes_read


def json_bytes_read() -> int:
    """Bytes of the JSON bodies this thread has read so far: the difference around a feed read is
    the size of the page it made (the batch bound of worker/readahead.py), whatever the source."""
    total: int = getattr(_read_here, "total", 0)
    return total


def json_body(upstream: Upstream, response: httpx.Response) -> Any:
    """The parsed JSON body of a success. A 204, an empty body, another media type (an HTML page
    from a gateway) or JSON cut short is a TransientUpstreamError: never read as "nothing"."""
    at = where(response.request)
    status = response.status_code
    if status == 204 or not response.content.strip():
        raise TransientUpstreamError(upstream.service, f"{at} answered {status} without a body", status=status)
    media = response.headers.get("Content-Type", "")
    if not _is_json_media(media):
        shown = media.split(";", 1)[0].strip()[:60] or "no Content-Type"
        raise TransientUpstreamError(
            upstream.service, f"{at} answered {status} with {shown} where JSON was expected", status=status
        )
    try:
        body = json.loads(response.content)
    except RecursionError:
        raise UnparseableBodyError(upstream.service, f"{at}: JSON nested too deeply to read", status=status) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TransientUpstreamError(
            upstream.service, f"{at} answered {status} with JSON that is cut short or broken", status=status
        ) from None
    except ValueError:  # whole, but beyond a decoder limit (integer digits) or not UTF-8
        raise UnparseableBodyError(
            upstream.service, f"{at}: a JSON body that cannot be decoded", status=status
        ) from None
    _read_here.total = json_bytes_read() + len(response.content)
    return body


def get_json(
    upstream: Upstream,
    client: httpx.Client,
    url: str,
    *,
    params: dict[str, str] | None = None,
    accept: str = "application/json",
    gone_ok: bool = False,
) -> Any:
    """GET a JSON body. With `gone_ok`, an explicit 404/410 is None (the resource is gone); nothing
    else ever is."""
    request = client.build_request("GET", url, params=params, headers={"Accept": accept})
    response = send(upstream, client, request, allow=GONE_STATUS if gone_ok else ())
    if response.status_code in GONE_STATUS:
        return None
    return json_body(upstream, response)
