"""What Microsoft's DICOM Cast left in FHIR, recognised so that dicomcast adopts it instead of
writing a second copy (the switch-over; README "Moving from DICOM Cast").

DICOM Cast (microsoft/dicom-server, converter/dicom-cast) wrote:
- ImagingStudy: server-assigned id, identifier `urn:dicom:uid|urn:oid:<StudyInstanceUID>` (the same as
  ours, so the study lookup finds it), `meta.source` = its `DicomWeb:Endpoint` as .NET's
  `Uri.ToString()` writes it (version-less; a bare host gets a trailing slash), series modality
  with the bare system "DCM", instance sopClass as the raw UID without a system, and the
  StudyDescription as a `note`.
- Endpoint: server-assigned id, name "DICOM WADO-RS endpoint <that same string>", address that string.
- Dose Observations: server-assigned ids from plain POSTs, identified only by the *study's*
  identifier (dicomcast's carry the SR's or the event's UID), status preliminary; irradiation
  events without `partOf`.

A study DICOM Cast made for this DICOM service is ours now: once a page touches it, it is brought
up to dicomcast's mapping (ownership, codings, description). Untouched resources are not read
or written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dicomcast.fhir.mapping import ids
from dicomcast.fhir.mapping.terminology import DCM, LOINC, RFC3986
from dicomcast.fhir.mapping.types import FhirVersion, Resource, SourceContext, copied, service_root

ENDPOINT_NAME = "DICOM WADO-RS endpoint"
_DICOM_CAST_MODALITY_SYSTEM = "DCM"
_VERSION_SUFFIX = re.compile(r"/v\d+(\.\d+)?$")
_DOSE_CODES = frozenset({(LOINC, "73569-6"), (DCM, "113852")})  # dose summary, irradiation event
SR_MODALITY = "SR"
# SR SOP classes that can hold a radiation dose report (PS3.4 B.5): the dose SRs themselves and
# the general-purpose SR classes older modalities used for TID 10001/10011.
DOSE_CAPABLE_SR_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.88.67", "1.2.840.10008.5.1.4.1.1.88.68", "1.2.840.10008.5.1.4.1.1.88.76",
        "1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33",
        "1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.88.35",
    }
)  # fmt: skip


def dicom_cast_addresses(source_uri: str) -> tuple[str, ...]:
    """The DICOMweb roots DICOM Cast would have used for this source: the version-less service URL,
    with and without the trailing slash `Uri.ToString()` adds to a bare host. DICOM Cast knew no
    partitions, so a partition's source has none."""
    if service_root(source_uri) != source_uri:
        return ()
    root = _VERSION_SUFFIX.sub("", source_uri.rstrip("/"))
    return (f"{root}/", root) if root != source_uri.rstrip("/") else (f"{root}/",)


def dicom_cast_endpoint_names(address: str) -> tuple[str, ...]:
    return tuple(f"{ENDPOINT_NAME} {root}" for root in dicom_cast_addresses(address))


def is_wado_endpoint(resource: Resource, names: Iterable[str]) -> bool:
    """An Endpoint named one of `names` with the `dicom-wado-rs` connection type. The FHIR `name`
    search matches prefixes ("…host/" also finds "…host/v1"), so the name is compared here, without
    case: .NET wrote the host in lower case."""
    if resource.get("resourceType") != "Endpoint":
        return False
    if str(resource.get("name", "")).lower() not in {name.lower() for name in names}:
        return False
    connection = resource.get("connectionType")
    concepts = connection if isinstance(connection, list) else [connection]  # R5 list, R4 one Coding
    codings = [c for item in concepts if isinstance(item, dict) for c in item.get("coding", [item])]
    return any(isinstance(c, dict) and c.get("code") == "dicom-wado-rs" for c in codings)


def is_dicom_cast_study(study: Resource | None, context: SourceContext) -> bool:
    source = ((study or {}).get("meta") or {}).get("source")
    wanted = {_canonical(address) for address in dicom_cast_addresses(context.source_uri)}
    return isinstance(source, str) and _canonical(source) in wanted


def _canonical(url: str) -> str:
    """Scheme and host in lower case, as .NET's Uri writes them; the path as it is."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, parts.fragment))


def adopted_study(existing: Resource | None, context: SourceContext, version: FhirVersion) -> Resource | None:
    """`existing` brought up to dicomcast's mapping if DICOM Cast made it for this source; else as is.

    Only what DICOM Cast wrote differently is changed: ownership (meta.source), the "DCM" modality
    system, sopClass as a bare UID, and the StudyDescription kept as a note. What the page's
    instances carry is applied afterwards by the merge, as for any study.
    """
    if existing is None or not is_dicom_cast_study(existing, context):
        return existing
    study = copied(existing)
    study["meta"] = {**study.get("meta", {}), "source": context.source_uri}
    for series in study.get("series") or []:
        _modality_system(series, version)
        for instance in series.get("instance") or []:
            _sop_class(instance)
    _description_from_notes(study)
    return study


def _modality_system(series: dict[str, Any], version: FhirVersion) -> None:
    modality = series.get("modality")
    if (
        isinstance(modality, dict)
        and modality.get("system") == _DICOM_CAST_MODALITY_SYSTEM
        and version is FhirVersion.R4
    ):
        series["modality"] = {**modality, "system": DCM}


def _sop_class(instance: dict[str, Any]) -> None:
    sop_class = instance.get("sopClass")
    if isinstance(sop_class, dict) and not sop_class.get("system") and isinstance(sop_class.get("code"), str):
        instance["sopClass"] = {"system": RFC3986, "code": f"urn:oid:{sop_class['code'].removeprefix('urn:oid:')}"}


def _description_from_notes(study: Resource) -> None:
    """DICOM Cast appended each StudyDescription as a note; ours is `description`. The newest note
    becomes the description when there is none, and notes repeating the description go."""
    notes = [n for n in study.get("note") or [] if isinstance(n, dict)]
    if not study.get("description") and notes and isinstance(notes[-1].get("text"), str):
        study["description"] = notes[-1]["text"]
    kept = [
        n for n in study.get("note") or [] if not (isinstance(n, dict) and n.get("text") == study.get("description"))
    ]
    if kept:
        study["note"] = kept
    else:
        study.pop("note", None)


def is_dicom_cast_dose(observation: Resource, study_uid: str) -> bool:
    """A dose Observation DICOM Cast wrote for this study: it carries the study's own identifier
    (dicomcast's never do) and a dose summary or irradiation event code."""
    study_identifier = ids.study_identifier(study_uid)
    identifiers = [
        {"system": i.get("system"), "value": i.get("value")}
        for i in observation.get("identifier") or ()
        if isinstance(i, dict)
    ]
    codings = ((observation.get("code") or {}).get("coding")) or ()
    return study_identifier in identifiers and any(
        isinstance(c, dict) and (c.get("system"), c.get("code")) in _DOSE_CODES for c in codings
    )


def sr_instances(series_list: Iterable[Mapping[str, Any]]) -> set[str]:
    """SOP Instance UIDs of the study's instances that may be dose reports (SR series, SR classes)."""
    found: set[str] = set()
    for series in series_list:
        modality = series.get("modality") or {}
        if "coding" in modality:  # R5 CodeableConcept
            modality = (modality.get("coding") or [{}])[0]
        if modality.get("code") != SR_MODALITY:
            continue
        for instance in series.get("instance") or ():
            sop_class = str((instance.get("sopClass") or {}).get("code", "")).removeprefix("urn:oid:")
            if sop_class in DOSE_CAPABLE_SR_CLASSES:
                found.add(str(instance.get("uid")))
    return found


def dose_observations_to_replace(
    existing: Sequence[Resource], study_uid: str, remaining_srs: set[str], mapped_srs: Iterable[str]
) -> list[Resource]:
    """DICOM Cast's dose Observations of the study that dicomcast's own now replace.

    DICOM Cast's carry no SR UID, so they can be attributed to SRs only as a whole: they are
    replaced when every dose-capable SR left in the study is mapped in this page (the usual case of
    one dose report per study, or a replay), and deleted with the study's last SR. Otherwise they
    are left as they are and the caller warns.
    """
    legacy = [o for o in existing if is_dicom_cast_dose(o, study_uid)]
    if not legacy or not remaining_srs <= set(mapped_srs):
        return []
    return legacy
