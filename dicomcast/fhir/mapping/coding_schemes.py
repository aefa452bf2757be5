"""DICOM Coding Scheme Designators -> FHIR code systems, and SNOMED-RT -> SNOMED CT.

PS3.16 section 8 (Table 8-1) names each designator's coding scheme and UID. Where HL7 publishes a
FHIR URI for the scheme it is used; otherwise `urn:oid:` of the scheme's UID; a designator neither
table knows (local "99..." schemes, typos) gets `urn:dicom:coding-scheme-designator:<designator>`,
so that no Coding is ever written without a system and two local schemes never share one.

SNOMED: only SNOMED CT concept ids go under `http://snomed.info/sct`. Legacy SNOMED-RT codes
(designator SRT, or SNM3/99SDM, e.g. `T-D3000`) are translated with the DICOM mapping that pydicom
ships; a code that has no translation keeps its designator's fallback system instead.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple
from urllib.parse import quote

from pydicom.sr._snomed_dict import mapping as _snomed_mapping

SNOMED: Final = "http://snomed.info/sct"
FALLBACK_PREFIX: Final = "urn:dicom:coding-scheme-designator:"

_SRT_TO_SCT: Final[dict[str, str]] = dict(_snomed_mapping["SRT"])
_KNOWN_SCT: Final[frozenset[str]] = frozenset(_snomed_mapping["SCT"])

# Designator -> (FHIR URI or None, coding scheme UID or None), from PS3.16 Table 8-1 and the FHIR
# terminology pages (terminology.hl7.org) for the URIs.
_SCHEMES: Final[dict[str, tuple[str | None, str | None]]] = {
    "DCM": ("http://dicom.nema.org/resources/ontology/DCM", "1.2.840.10008.2.16.4"),
    "SCT": (SNOMED, "2.16.840.1.113883.6.96"),
    "LN": ("http://loinc.org", "2.16.840.1.113883.6.1"),
    "UCUM": ("http://unitsofmeasure.org", "2.16.840.1.113883.6.8"),
    "RADLEX": ("http://radlex.org", "2.16.840.1.113883.6.256"),
    "RXNORM": ("http://www.nlm.nih.gov/research/umls/rxnorm", "2.16.840.1.113883.6.88"),
    "NCIT": ("http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl", "2.16.840.1.113883.3.26.1.1"),
    "UMLS": ("http://www.nlm.nih.gov/research/umls", "2.16.840.1.113883.6.86"),
    "I10": ("http://hl7.org/fhir/sid/icd-10", "2.16.840.1.113883.6.3"),
    "ICD10": ("http://hl7.org/fhir/sid/icd-10", "2.16.840.1.113883.6.3"),
    "I10P": ("http://www.cms.gov/Medicare/Coding/ICD10", "2.16.840.1.113883.6.4"),
    "I9C": ("http://hl7.org/fhir/sid/icd-9-cm", "2.16.840.1.113883.6.2"),
    "C4": ("http://www.ama-assn.org/go/cpt", "2.16.840.1.113883.6.12"),
    "NDC": ("http://hl7.org/fhir/sid/ndc", "2.16.840.1.113883.6.69"),
    "MDC": ("urn:iso:std:iso:11073:10101", "2.16.840.1.113883.6.24"),
    "NPI": ("http://hl7.org/fhir/sid/us-npi", "2.16.840.1.113883.4.6"),
    "C5": (None, "2.16.840.1.113883.6.82"),
    "I9": (None, "2.16.840.1.113883.6.42"),
    "FMA": (None, "2.16.840.1.113883.6.119"),
    "MSH": (None, "2.16.840.1.113883.6.177"),
    "ACR": (None, "2.16.840.1.113883.6.76"),
    "HPC": (None, "2.16.840.1.113883.6.14"),
    "NEU": (None, "2.16.840.1.113883.6.210"),
    "BI": (None, "1.2.840.10008.2.16.5"),
    "SNM3": (None, "2.16.840.1.113883.6.51"),
    "99SDM": (None, "2.16.840.1.113883.6.53"),
}
_LEGACY_SNOMED: Final = frozenset({"SRT", "SNM3", "99SDM"})
_SCTID = re.compile(r"^[1-9][0-9]{5,17}$")

# Verhoeff check digit tables (SNOMED CT ids end in a Verhoeff check digit).
_MULT: Final = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_PERM: Final = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


class SystemCode(NamedTuple):
    system: str
    code: str
    translated: bool  # the code was rewritten (SNOMED-RT -> SNOMED CT)


def is_sctid(code: str) -> bool:
    """Whether `code` has the form of a SNOMED CT identifier (digits, Verhoeff check digit)."""
    if not _SCTID.match(code):
        return False
    check = 0
    for position, digit in enumerate(reversed(code)):
        check = _MULT[check][_PERM[position % 8][int(digit)]]
    return check == 0


def fallback_system(designator: str) -> str:
    """The documented system of a designator no table knows: a URN carrying the designator."""
    return FALLBACK_PREFIX + quote(designator, safe="")


def scheme_system(designator: str | None) -> str | None:
    """The FHIR system of a designator (case-insensitive); None only when there is no designator."""
    if designator is None or not designator.strip():
        return None
    key = designator.strip().upper()
    uri, uid = _SCHEMES.get(key, (None, None))
    if uri:
        return uri
    if uid:
        return f"urn:oid:{uid}"
    return fallback_system(designator.strip())


def snomed_ct(code: str) -> str | None:
    """The SNOMED CT concept id of a SNOMED CT id or a legacy SNOMED-RT code; None if neither."""
    if code in _KNOWN_SCT or is_sctid(code):
        return code
    return _SRT_TO_SCT.get(code)


def system_code(designator: str | None, code: str) -> SystemCode | None:
    """The FHIR system and code of a DICOM (designator, code value); None without a designator."""
    system = scheme_system(designator)
    if system is None:
        return None
    key = (designator or "").strip().upper()
    if key == "SCT" or key in _LEGACY_SNOMED:
        concept = snomed_ct(code)
        if concept is not None:
            return SystemCode(SNOMED, concept, concept != code)
        if system == SNOMED:  # an SCT-labelled code that is no SNOMED CT id
            system = fallback_system(key)
    return SystemCode(system, code, False)
