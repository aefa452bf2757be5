"""HTTP edges of the Azure DICOM source: the endpoint's API version, and errors in dicomcast's tree.

No retries here: the worker wraps calls with tenacity and uses `TransientUpstreamError.retry_after`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx

from dicomcast.errors import (
    AuthError,
    ConfigError,
    PermanentUpstreamError,
    TransientUpstreamError,
)

SERVICE = "DICOMweb"
SUPPORTED_VERSIONS = ("v1", "v2")
_VERSION_SEGMENT = re.compile(r"^v\d+(?:\.\d+)?(?:-[a-z]+)?$", re.IGNORECASE)
_TRANSIENT_STATUSES = {408, 429}


@dataclass(frozen=True)
class ServiceRoot:
    """A DICOMweb root with its API version: `https://host/v2` -> version 2."""

    url: str  # no trailing slash
    version: int

    def partition_url(self, partition: str | None) -> str:
        return f"{self.url}/partitions/{partition}" if partition else self.url


def _split_version(url: str) -> tuple[str, str | None, str]:
    """(root before the version, version segment or None, what follows it)."""
    parts = urlsplit(url.strip())
    segments = [segment for segment in parts.path.split("/") if segment]
    for index in range(len(segments) - 1, -1, -1):
        if _VERSION_SEGMENT.match(segments[index]):
            root = urlunsplit((parts.scheme, parts.netloc, "/".join(["", *segments[:index]]), "", ""))
            return root.rstrip("/"), segments[index], "/".join(segments[index + 1 :])
    root = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return root.rstrip("/"), None, ""


def parse_service_root(url: str | None, setting: str = "DicomWeb:Endpoint") -> ServiceRoot:
    """The service URL with its version (`/v1` or `/v2`), or a ConfigError showing the fix."""
    if not url or not url.strip():
        raise ConfigError(
            [
                f"{setting} is not set: give the DICOM service URL with its API version, "
                "e.g. https://<workspace>-<service>.dicom.azurehealthcareapis.com/v2"
            ]
        )
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError([f"{setting} {url!r} is not an http(s) URL"])
    root, version, rest = _split_version(url)
    if version is None:
        raise ConfigError(
            [
                f"{setting} {url!r} has no API version, and a DICOM service URL without one "
                f"answers 404. Use {root}/v2 (or {root}/v1)."
            ]
        )
    if version.lower() not in SUPPORTED_VERSIONS:
        raise ConfigError(
            [
                f"{setting} {url!r} uses API version {version}, which dicomcast does not "
                f"read; use {root}/v2 (or {root}/v1)."
            ]
        )
    if rest or parts.query:
        raise ConfigError(
            [
                f"{setting} {url!r} must be the service root with its version, without "
                f"/{rest or '?' + parts.query}; use {root}/{version.lower()}."
            ]
        )
    return ServiceRoot(url=f"{root}/{version.lower()}", version=int(version[1:]))


def private_root(url: str, public: ServiceRoot) -> ServiceRoot:
    """`DicomWeb:PrivateEndpoint`: the public version is added when it has none; it must not differ."""
    root, version, _ = _split_version(url)
    if version is None:
        return parse_service_root(f"{root}/v{public.version}", "DicomWeb:PrivateEndpoint")
    private = parse_service_root(url, "DicomWeb:PrivateEndpoint")
    if private.version != public.version:
        raise ConfigError(
            [
                f"DicomWeb:PrivateEndpoint uses API v{private.version} but DicomWeb:Endpoint "
                f"uses v{public.version}; use {root}/v{public.version}."
            ]
        )
    return private


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    value = headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _where(request: httpx.Request) -> str:
    """The URL without its query string, which may hold UIDs or times but never PHI or secrets."""
    return str(request.url.copy_with(query=None))


def raise_for_status(response: httpx.Response, *, allow: tuple[int, ...] = ()) -> None:
    """Translate an error status into dicomcast's exceptions; `allow` lists statuses the caller reads."""
    status = response.status_code
    if status < 400 or status in allow:
        return
    where = _where(response.request)
    if status in (401, 403):
        raise AuthError(
            f"{SERVICE} HTTP {status} from {where}: the token was refused; check "
            "DicomWeb:Authentication:* (Enabled, AuthenticationType and its credential's "
            "Resource/Scope) and the identity's role on the DICOM service"
        )
    if status in _TRANSIENT_STATUSES or status >= 500:
        raise TransientUpstreamError(
            SERVICE,
            f"{where} answered {response.reason_phrase}",
            status=status,
            retry_after=retry_after(response.headers),
        )
    raise PermanentUpstreamError(
        SERVICE, f"{where} answered {response.reason_phrase}: {_detail(response)}", status=status
    )


def _detail(response: httpx.Response) -> str:
    """A short reason from the body. The service's error texts name UIDs and parameters, not PHI."""
    text = response.text.strip().replace("\n", " ")
    return text[:300] if text else "no detail"


def raise_transport_error(error: httpx.TransportError) -> NoReturn:
    where = _where(error.request) if _has_request(error) else "the DICOM service"
    kind = "timed out" if isinstance(error, httpx.TimeoutException) else "could not be reached"
    raise TransientUpstreamError(SERVICE, f"{where} {kind} ({type(error).__name__})") from error


def _has_request(error: httpx.TransportError) -> bool:
    try:
        error.request  # noqa: B018 - httpx raises RuntimeError when the error has no request
    except RuntimeError:
        return False
    return True


def json_body(response: httpx.Response) -> Any:
    """The JSON body; an empty body or 204 is None. A broken body is a transient fault (proxy, cut)."""
    if response.status_code == 204 or not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError as error:
        raise TransientUpstreamError(
            SERVICE, f"{_where(response.request)} sent a body that is not JSON", status=response.status_code
        ) from error
