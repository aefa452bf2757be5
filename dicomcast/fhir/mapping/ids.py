"""Deterministic FHIR resource ids.

Ids are derived from DICOM identity (UIDs, partition, PatientID), so two workers, a replay or a
restart always name a resource the same way. They are hashes, not the UIDs themselves: a FHIR id
holds at most 64 characters (a partition name plus a 64-character UID does not fit) and must not
carry PatientIDs, which are PHI, into URLs and logs.
"""

from __future__ import annotations

import hashlib
from typing import Any

from dicomcast.fhir.mapping.terminology import DICOM_UID

_SEPARATOR = "\x1f"  # ASCII unit separator: cannot occur in UIDs or DICOM strings


def resource_id(kind: str, *parts: str) -> str:
    """`kind` and `parts` hashed to 40 lower-case hex digits (160 bits of SHA-256).

    Matches FHIR `id` (`[A-Za-z0-9\\-.]{1,64}`). The kind is part of the hash, so a Patient and an
    ImagingStudy made from the same strings get different ids.
    """
    digest = hashlib.sha256(_SEPARATOR.join((kind, *parts)).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:40]


def study_identifier(study_uid: str) -> dict[str, str]:
    """ImagingStudy.identifier of the Study Instance UID (as DICOM Cast wrote it too)."""
    return {"system": DICOM_UID, "value": f"urn:oid:{study_uid}"}


def study_token(study_uid: str) -> str:
    """The `identifier` search token that finds the study's ImagingStudy."""
    return identifier_token(DICOM_UID, f"urn:oid:{study_uid}")


def identifier_token(system: str | None, value: str) -> str:
    """A token search value `system|value` (`|value`: no system), each part escaped as FHIR search
    requires (`\\`, `|`, `,`, `$`), so a PatientID holding `|` or `,` is searched as itself."""
    return f"{_token_escape(system or '')}|{_token_escape(value)}"


def _token_escape(part: str) -> str:
    return part.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")


def study_uid_of(resource: dict[str, Any]) -> str | None:
    """The Study Instance UID an ImagingStudy is identified by, if any."""
    for identifier in resource.get("identifier", []):
        value = str(identifier.get("value", ""))
        if identifier.get("system") == DICOM_UID and value.startswith("urn:oid:"):
            return value.removeprefix("urn:oid:")
    return None
