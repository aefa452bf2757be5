"""The Azure DICOM source's endpoint URLs and their API version.

What an answer means (status, media type, body) is decided in dicomcast/http.py, for every server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from dicomcast.errors import ConfigError

SERVICE = "DICOMweb"
SUPPORTED_VERSIONS = ("v1", "v2")
_VERSION_SEGMENT = re.compile(r"^v\d+(?:\.\d+)?(?:-[a-z]+)?$", re.IGNORECASE)


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
