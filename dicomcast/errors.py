"""The one exception tree of dicomcast, and its exit codes.

    DicomcastError
    ├── ConfigError             settings missing or invalid (exit 78)
    ├── AuthError               a token could not be had, or a server said 401/403 twice (exit 77)
    ├── StoreError              the checkpoint store is unreachable or not migrated (exit 69)
    ├── LeaseLostError          another worker holds the source's lease
    ├── MappingError            an entry's DICOM data cannot become FHIR (permanent for that entry)
    └── UpstreamError           a DICOM or FHIR server answered badly
        ├── TransientUpstreamError   network, timeout, 408, 429, 5xx, a body that is empty, HTML or
        │                            cut short where JSON was expected: retry later
        ├── PermanentUpstreamError   other 4xx: the entry is recorded as a failure
        │   ├── ServerNotSupportedError  wrong FHIR version, no transactions, wrong API version
        │   └── UnparseableBodyError     a complete body no parser can read (nesting too deep)
        ├── UpstreamRedirectError    a 3xx: a proxy or gateway redirected; never followed (exit 78)
        └── ConflictError            FHIR 409/412: re-read, re-merge, retry

The HTTP classification table is in dicomcast/http.py (one place for every server).

Messages never carry PHI or secret values: only UIDs, sequences, URLs without query strings,
setting names and status codes.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (documented in the README)."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    STILL_FAILING = 1  # failures retry: some failures still fail (the same number as UNEXPECTED)
    DIFFERENCES = 3  # reconcile: FHIR differs from the DICOM server (dry run), or not all was repaired
    DATA = 65  # map: some entries could not be mapped (EX_DATAERR)
    UNAVAILABLE = 69  # a dependency (DICOM, FHIR, store) could not be reached
    NO_PERMISSION = 77  # authentication failed
    CONFIG = 78  # configuration invalid


class DicomcastError(Exception):
    """Base of every error dicomcast raises on purpose."""

    exit_code: ExitCode = ExitCode.UNEXPECTED


class ConfigError(DicomcastError):
    """Settings are missing or invalid. `problems` holds one line per problem."""

    exit_code = ExitCode.CONFIG

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class AuthError(DicomcastError):
    """A credential failed or a server refused the token."""

    exit_code = ExitCode.NO_PERMISSION


class StoreError(DicomcastError):
    """The store cannot be used."""

    exit_code = ExitCode.UNAVAILABLE


class LeaseLostError(DicomcastError):
    """This worker no longer holds the lease of its source and must stop writing."""

    exit_code = ExitCode.UNAVAILABLE


class MappingError(DicomcastError):
    """DICOM data that cannot become FHIR. Permanent for the entry it came from."""

    def __init__(self, reason: str, *, tag: str | None = None) -> None:
        where = f" (tag {tag})" if tag else ""
        super().__init__(f"{reason}{where}")
        self.reason = reason
        self.tag = tag


class UpstreamError(DicomcastError):
    """A DICOM or FHIR server answered with an error or could not be reached."""

    exit_code = ExitCode.UNAVAILABLE

    def __init__(
        self,
        service: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        code = f" HTTP {status}" if status is not None else ""
        super().__init__(f"{service}{code}: {message}")
        self.service = service
        self.status = status
        self.retry_after = retry_after


class TransientUpstreamError(UpstreamError):
    """Worth retrying: network errors, timeouts, 408, 429 and 5xx."""


class PermanentUpstreamError(UpstreamError):
    """Not worth retrying as is: 4xx other than 408/409/412/429."""


class ServerNotSupportedError(PermanentUpstreamError):
    """The server is not one dicomcast can work with (version, capabilities)."""


class UnparseableBodyError(PermanentUpstreamError):
    """A body that arrived whole but can never be decoded (JSON nested beyond the parser's depth,
    integers beyond Python's digit limit). Retrying reads the same bytes, so it is not transient;
    the caller isolates the entry it belongs to."""


class UpstreamRedirectError(UpstreamError):
    """A 3xx: something between dicomcast and the server (a proxy, a gateway, a sign-in page)
    redirected. Redirects are never followed (credentials would go along); the operator fixes the
    URL setting named in the message. For `check` this is a configuration problem (78); a running
    worker fails the cycle, keeps its checkpoint and tries again next cycle."""

    exit_code = ExitCode.CONFIG


class ConflictError(UpstreamError):
    """FHIR 409 Conflict or 412 Precondition Failed: someone else changed the resource."""
