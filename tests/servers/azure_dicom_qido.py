"""QIDO-RS and WADO-RS study/series metadata for the loopback Azure DICOM server, as the service's
conformance statement (v2) describes them:

- `../studies`, `../studies/{study}/series`, `../studies/{study}/instances`,
  `../studies/{study}/series/{series}/instances` (and `/partitions/{p}/...` with data partitions);
- `offset` (0..) and `limit` (1..200, default 100; 400 outside); `204 No Content` when nothing matches,
  also when `offset` is past the end; results newest first;
- matching: StudyInstanceUID, PatientID, AccessionNumber, StudyDate (exact or `a-b` range, either end
  open but not both) on studies; SeriesInstanceUID, Modality on a study's series and instances;
  SOPInstanceUID on instances; any other attribute is a 400;
- default attributes per level (study: StudyDate, AccessionNumber, StudyDescription,
  ReferringPhysicianName, PatientName, PatientID, PatientBirthDate, StudyInstanceUID; series:
  Modality, ManufacturerModelName, SeriesInstanceUID, PerformedProcedureStepStartDate; instance:
  SOPInstanceUID), a study's instances also carry their series' attributes; `includefield` (a tag,
  a keyword, a comma list, or `all`) adds the level's other attributes; the service computes
  NumberOfStudyRelatedInstances and NumberOfSeriesRelatedInstances when asked, and no series count;
- study-level attributes come from the newest instance ("latest wins").
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydicom.datadict import tag_for_keyword

from tests.servers.azure_dicom_data import DicomJson
from tests.servers.azure_dicom_feed import DEFAULT_PARTITION, InstanceKey

if TYPE_CHECKING:
    from tests.servers.azure_dicom import AzureDicomServer

MAX_LIMIT = 200
_ROUTE = re.compile(
    r"^/v[12](?:/partitions/(?P<partition>[A-Za-z0-9._-]{1,64}))?"
    r"(?:/studies/(?P<study>[0-9.]+))?(?:/series/(?P<series>[0-9.]+))?/(?P<what>studies|series|instances|metadata)$"
)
STUDY_DEFAULT = ("00080020", "00080050", "00081030", "00080090", "00100010", "00100020", "00100030", "0020000D")
STUDY_OTHER = ("00080005", "00080030", "00080056", "00080201", "00080063", "00081032", "00081060", "00081080",
               "00081110", "00101010", "00101020", "00101030", "00102180", "001021B0", "00100040", "00200010")  # fmt: skip
SERIES_DEFAULT = ("00080060", "00081090", "0020000E", "00400244")
SERIES_OTHER = ("00080005", "00080201", "00200011", "00200060", "00080021", "00080031", "0008103E", "00400245",
                "00400275")  # fmt: skip
INSTANCE_DEFAULT = ("00080018",)
INSTANCE_OTHER = ("00080005", "00080016", "00080056", "00080201", "00200013", "00280010", "00280011", "00280100",
                  "00280008")  # fmt: skip
STUDY_INSTANCES = "00201208"  # NumberOfStudyRelatedInstances
SERIES_INSTANCES = "00201209"  # NumberOfSeriesRelatedInstances
_MATCHING = {
    "studies": {"0020000D", "00100020", "00080050", "00080020"},
    "series": {"0020000E", "00080060"},
    "instances": {"0020000E", "00080060", "00080018"},
}
_CONTROL = {"offset", "limit", "includefield", "fuzzymatching"}


class QidoError(Exception):
    """A 400 with the service's kind of message."""


def route(server: AzureDicomServer, path: str, query: dict[str, str]) -> tuple[int, Any] | None:
    """(status, body) for a QIDO-RS or study/series metadata path; None when the path is not one."""
    match = _ROUTE.match(path)
    if match is None or (match["what"] == "studies" and match["study"]):
        return None
    if match["what"] == "series" and (not match["study"] or match["series"]):
        return None
    partition = _partition(server, match["partition"])
    if match["what"] == "metadata":
        if not match["study"]:
            return None
        found = _instances(server, partition, match["study"], match["series"])
        return (200, [meta for _, meta in found]) if found else (404, None)
    try:
        results = _search(server, partition, match["what"], match["study"], match["series"], query)
    except QidoError as error:
        return 400, {"errors": [str(error)]}
    offset, limit = _paging(query)
    page = results[offset : offset + limit]
    return (200, page) if page else (204, None)


def _partition(server: AzureDicomServer, name: str | None) -> str:
    from tests.servers.azure_dicom import BadRequestError

    if name and not server.partitions_enabled:
        raise BadRequestError("Data partitions capability is disabled.")
    if not name and server.partitions_enabled:
        raise BadRequestError("PartitionName value is missing in the route segment.")
    return name or DEFAULT_PARTITION


def _instances(
    server: AzureDicomServer, partition: str, study: str | None, series: str | None
) -> list[tuple[InstanceKey, DicomJson]]:
    """Current instances, newest first."""
    table = server.table
    with table.lock:
        keys = [k for k in table.current if k[0] == partition and study in (None, k[1]) and series in (None, k[2])]
        keys.sort(key=lambda k: table.current[k], reverse=True)
        return [(k, table.versions[table.current[k]]) for k in keys]


def _search(
    server: AzureDicomServer, partition: str, level: str, study: str | None, series: str | None, query: dict[str, str]
) -> list[DicomJson]:
    filters = _filters(level, query)
    wanted = _included(query)
    found = [(k, m) for k, m in _instances(server, partition, study, series) if _matches(m, filters)]
    if level == "instances":
        return [_pick(m, _instance_tags(wanted, with_series=series is None)) for _, m in found]
    groups: dict[str, list[DicomJson]] = {}
    for key, metadata in found:  # newest first, so each group's first instance is its newest
        groups.setdefault(key[2] if level == "series" else key[1], []).append(metadata)
    if level == "series":
        tags = _level_tags(SERIES_DEFAULT, SERIES_OTHER, wanted)
        return [_with_count(_pick(items[0], tags), SERIES_INSTANCES, len(items), wanted) for items in groups.values()]
    tags = _level_tags(STUDY_DEFAULT, STUDY_OTHER, wanted)
    return [_with_count(_pick(items[0], tags), STUDY_INSTANCES, len(items), wanted) for items in groups.values()]


def _filters(level: str, query: dict[str, str]) -> dict[str, str]:
    filters = {}
    for name, value in query.items():
        if name in _CONTROL:
            continue
        tag = _tag(name)
        if tag is None or tag not in _MATCHING[level]:
            raise QidoError(f"Invalid query: '{name}' is not a supported search attribute here.")
        if not value:
            raise QidoError(f"Invalid query: empty value for '{name}'.")
        if tag == "00080020" and value.strip() == "-":
            raise QidoError("Invalid query: a date range needs at least one end.")
        filters[tag] = value
    return filters


def _tag(name: str) -> str | None:
    if re.fullmatch(r"[0-9A-Fa-f]{8}", name):
        return name.upper()
    for candidate in (name, name[:1].upper() + name[1:]):
        number = tag_for_keyword(candidate)
        if number is not None:
            return f"{number:08X}"
    lowered = {k.lower(): k for k in ("StudyInstanceUID", "PatientID", "AccessionNumber", "StudyDate",
                                      "SeriesInstanceUID", "Modality", "SOPInstanceUID")}  # fmt: skip
    keyword = lowered.get(name.lower())
    number = tag_for_keyword(keyword) if keyword else None
    return f"{number:08X}" if number is not None else None


def _matches(metadata: DicomJson, filters: dict[str, str]) -> bool:
    for tag, wanted in filters.items():
        value = str(((metadata.get(tag) or {}).get("Value") or [""])[0])
        if tag == "00080020" and "-" in wanted:
            low, high = wanted.split("-", 1)
            if not value or (low and value < low) or (high and value > high):
                return False
        elif value != wanted:
            return False
    return True


def _included(query: dict[str, str]) -> set[str]:
    names = [n.strip() for n in query.get("includefield", "").split(",") if n.strip()]
    if any(n.lower() == "all" for n in names):
        return {"all"}
    tags = set()
    for name in names:
        tag = _tag(name)
        if tag is None:
            raise QidoError(f"Invalid query: unknown includefield '{name}'.")
        tags.add(tag)
    return tags


def _level_tags(default: tuple[str, ...], other: tuple[str, ...], wanted: set[str]) -> list[str]:
    if "all" in wanted:
        return [*default, *other]
    return [*default, *(t for t in other if t in wanted)]


def _instance_tags(wanted: set[str], *, with_series: bool) -> list[str]:
    tags = _level_tags(INSTANCE_DEFAULT, INSTANCE_OTHER, wanted)
    if with_series:
        tags += _level_tags(SERIES_DEFAULT, SERIES_OTHER, wanted)
    return ["0020000D", *tags]


def _pick(metadata: DicomJson, tags: list[str]) -> DicomJson:
    return {tag: metadata[tag] for tag in sorted(set(tags)) if tag in metadata}


def _with_count(result: DicomJson, tag: str, count: int, wanted: set[str]) -> DicomJson:
    if tag in wanted or "all" in wanted:
        result[tag] = {"vr": "IS", "Value": [count]}
    return result


def _paging(query: dict[str, str]) -> tuple[int, int]:
    from tests.servers.azure_dicom import _int_param

    return _int_param(query, "offset", 0, 0, None), _int_param(query, "limit", 100, 1, MAX_LIMIT)
