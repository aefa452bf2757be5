"""The Azure DICOM source's endpoint URLs and their API version.

What an answer means (status, media type, body) is decided in dicomcast/http.py, for every server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from dicomcast.errors import ConfigError

V1_MAX_LIMIT = 100  # the most entries one change-feed request returns, by API version
V2_MAX_LIMIT = 200

SERVICE = "DICOMweb"
SUPPORTED_VERSIONS = ("v1", "v2")
_VERSION_SEGMENT = re.compile(r"^v\d+(?:\.\d+)?(?:-[a-z]+)?$", re.IGNORECASE)


@dataclass(frozen=True)
class ServiceRoot:
    """A DICOMweb root with its API version: `https://host/v2` -> version 2.

    `versionless`: the setting had no version and v1 was assumed, as DICOM Cast did (it appended
    `/v1` itself). `given` is the setting as written (DICOM Cast named its FHIR Endpoint after it).
    """

    url: str  # no trailing slash
    version: int
    versionless: bool = False
    given: str = ""

    def partition_url(self, partition: str | None) -> str:
        return f"{self.url}/partitions/{partition}" if partition else self.url

    def with_version(self, version: int) -> ServiceRoot:
        """The same service under another API version (v1 and v2 are served side by side)."""
        base = self.url.rsplit("/", 1)[0]
        return ServiceRoot(url=f"{base}/v{version}", version=version, given=self.given)


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
    """The service URL with its version (`/v1` or `/v2`; none means v1, as in DICOM Cast), or a
    ConfigError showing the fix."""
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
    if parts.query or parts.fragment:
        raise ConfigError(
            [f"{setting} {url!r} must be the service root without a query; use {_split_version(url)[0]}/v2."]
        )
    root, version, rest = _split_version(url)
    if version is None:
        # DICOM Cast pinned API v1 and appended it itself; a DICOM Cast vault holds the bare root.
        return ServiceRoot(url=f"{root}/v1", version=1, versionless=True, given=url.strip())
    if version.lower() not in SUPPORTED_VERSIONS:
        raise ConfigError(
            [
                f"{setting} {url!r} uses API version {version}, which dicomcast does not "
                f"read; use {root}/v2 (or {root}/v1)."
            ]
        )
    if rest:
        raise ConfigError(
            [
                f"{setting} {url!r} must be the service root with its version, without "
                f"/{rest}; use {root}/{version.lower()}."
            ]
        )
    return ServiceRoot(url=f"{root}/{version.lower()}", version=int(version[1:]), given=url.strip())


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
