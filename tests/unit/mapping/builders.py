"""DICOM JSON builders for mapping tests: a generated multi-series study and an X-Ray dose SR."""

from __future__ import annotations

from typing import Any

from dicomcast.dicom.models import ChangeAction, ChangeEntry, ChangeState
from dicomcast.fhir.mapping import SourceContext

CONTEXT = SourceContext(source_uri="http://dicom.test/dicom-web", endpoint_reference="Endpoint/ep1")
OTHER_CONTEXT = SourceContext(source_uri="http://other.test/dicom-web", endpoint_reference="Endpoint/ep2")

STUDY = "1.2.826.0.1.3680043.8.498.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"


def el(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def pn(alphabetic: str, ideographic: str | None = None, phonetic: str | None = None) -> dict[str, Any]:
    value = {"Alphabetic": alphabetic}
    if ideographic:
        value["Ideographic"] = ideographic
    if phonetic:
        value["Phonetic"] = phonetic
    return el("PN", value)


def code(value: str, scheme: str, meaning: str) -> dict[str, Any]:
    return {"00080100": el("SH", value), "00080102": el("SH", scheme), "00080104": el("LO", meaning)}


def instance(
    series: int,
    number: int,
    *,
    modality: str = "CT",
    patient_id: str = "PAT-1",
    sop_class: str = CT_IMAGE,
    study: str = STUDY,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A minimal valid instance of `study`, series `series`, instance `number`."""
    data: dict[str, Any] = {
        "00080016": el("UI", sop_class),
        "00080018": el("UI", f"{study}.{series}.{number}"),
        "00080020": el("DA", "20240315"),
        "00080030": el("TM", "101530.25"),
        "00080060": el("CS", modality),
        "00100010": pn("Doe^Jane^Q^Dr.^PhD"),
        "00100020": el("LO", patient_id),
        "00100030": el("DA", "19800102"),
        "00100040": el("CS", "F"),
        "0020000D": el("UI", study),
        "0020000E": el("UI", f"{study}.{series}"),
        "00200011": el("IS", series),
        "00200013": el("IS", number),
    }
    data.update(extra or {})
    return data


def common_study_attributes() -> dict[str, Any]:
    """Study-level attributes every instance of the generated study carries."""
    return {
        "00080050": el("SH", "ACC-42"),
        "00080051": el("SQ", {"00400032": el("UT", "1.2.3.4.5.6"), "00400033": el("CS", "ISO")}),
        "00080090": pn("Welby^Marcus"),
        "00080096": el("SQ", {"00401101": el("SQ", code("MW-77", "L", "Welby^Marcus"))}),
        "00321064": el("SQ", code("RPID4", "RADLEX", "CT Chest w/o contrast")),
        "00401012": el("SQ", code("50417007", "SCT", "Lower respiratory tract infection")),
        "00080201": el("SH", "+0100"),
        "00081030": el("LO", "CT chest and MR knee"),
        "00081032": el("SQ", code("RPID4", "RADLEX", "CT Chest w/o contrast")),
        "00081040": el("LO", "Radiology West"),
        "00081060": el("PN", {"Alphabetic": "House^Gregory"}),
        "00200010": el("SH", "S1"),
        "00400275": el(
            "SQ",
            {
                "0040100A": el("SQ", code("233604007", "SCT", "Pneumonia")),
                "00401002": el("LO", "Cough for three weeks"),
            },
        ),
    }


def multi_series_study() -> list[dict[str, Any]]:
    """Three series, mixed modalities, body parts, laterality, accession with issuer, request data."""
    common = common_study_attributes()
    chest = {
        **common,
        "00180015": el("CS", "CHEST"),
        "0008103E": el("LO", "Chest axial"),
        "00080021": el("DA", "20240315"),
        "00080031": el("TM", "1016"),
        "00081050": pn("Grey^Meredith"),
        "00081052": el("SQ", {"00401101": el("SQ", code("1234567893", "NPI", "Grey^Meredith"))}),
        "00081070": pn("Tech^Tom"),
    }
    knee = {
        **common,
        "00180015": el("CS", "KNEE"),
        "00200060": el("CS", "L"),
        "0008103E": el("LO", "Left knee"),
    }
    odd = {**common, "00180015": el("CS", "LEFTTHUMBNAIL"), "00200060": el("CS", "R")}
    return [
        instance(1, 1, extra=chest),
        instance(1, 2, extra=chest),
        instance(2, 1, modality="MR", sop_class=MR_IMAGE, extra=knee),
        instance(2, 2, modality="MR", sop_class=MR_IMAGE, extra=knee),
        instance(3, 1, modality="MR", sop_class=MR_IMAGE, extra=odd),
    ]


def _num(concept: dict[str, Any], value: str, unit: str, unit_meaning: str) -> dict[str, Any]:
    return {
        "0040A040": el("CS", "NUM"),
        "0040A043": el("SQ", concept),
        "0040A300": el("SQ", {"004008EA": el("SQ", code(unit, "UCUM", unit_meaning)), "0040A30A": el("DS", value)}),
    }


def _item(value_type: str, concept: dict[str, Any], **values: Any) -> dict[str, Any]:
    """A content item: CODE (code=...), DATETIME (dt=...), UIDREF (uid=...) or CONTAINER (children=...)."""
    item = {"0040A040": el("CS", value_type), "0040A043": el("SQ", concept)}
    if "code" in values:
        item["0040A168"] = el("SQ", values["code"])
    if "dt" in values:
        item["0040A120"] = el("DT", values["dt"])
    if "uid" in values:
        item["0040A124"] = el("UI", values["uid"])
    if "children" in values:
        item["0040A730"] = el("SQ", *values["children"])
    return item


PLANES = {"A": code("113620", "DCM", "Plane A"), "B": code("113621", "DCM", "Plane B")}


def _event(
    uid: str, dap: str, plane: str | None = None, rp_dose: str | None = None, started: str = "20240315101700"
) -> dict[str, Any]:
    """TID 10003 Irradiation Event X-Ray Data."""
    children = [
        _item("UIDREF", code("113769", "DCM", "Irradiation Event UID"), uid=uid),
        _item("DATETIME", code("111526", "DCM", "DateTime Started"), dt=started),
        _item("CODE", code("123014", "DCM", "Target Region"), code=code("51185008", "SCT", "Chest")),
        _num(code("122130", "DCM", "Dose Area Product"), dap, "Gy.m2", "Gy.m2"),
    ]
    if plane:
        children.insert(0, _item("CODE", code("113764", "DCM", "Acquisition Plane"), code=PLANES[plane]))
    if rp_dose:
        children.append(_num(code("113738", "DCM", "Dose (RP)"), rp_dose, "Gy", "Gy"))
    return _item("CONTAINER", code("113706", "DCM", "Irradiation Event X-Ray Data"), children=children)


def _dose_report(
    series: int, number: int, children: list[dict[str, Any]], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return instance(
        series,
        number,
        modality="SR",
        sop_class=XRAY_DOSE_SR,
        extra={
            **common_study_attributes(),
            "00080023": el("DA", "20240315"),
            "00080033": el("TM", "102000"),
            "0040A040": el("CS", "CONTAINER"),
            "0040A043": el("SQ", code("113701", "DCM", "X-Ray Radiation Dose Report")),
            "0040A730": el("SQ", *children),
            **(extra or {}),
        },
    )


def dose_sr(series: int = 9, number: int = 1) -> dict[str, Any]:
    """An X-Ray Radiation Dose SR (TID 10001) with an accumulated dose and two irradiation events."""
    accumulated = _item(
        "CONTAINER",
        code("113702", "DCM", "Accumulated X-Ray Dose Data"),
        children=[
            _num(code("113722", "DCM", "Dose Area Product Total"), "0.00042", "Gy.m2", "Gy.m2"),
            _num(code("113725", "DCM", "Dose (RP) Total"), "0.0123", "Gy", "Gy"),
            _num(code("113731", "DCM", "Total Number of Radiographic Frames"), "12", "1", "no units"),
        ],
    )
    return _dose_report(
        series,
        number,
        [
            _item("CODE", code("121058", "DCM", "Procedure reported"), code=code("113704", "DCM", "Projection X-Ray")),
            _item("DATETIME", code("113809", "DCM", "Start of X-Ray Irradiation"), dt="20240315101600+0100"),
            accumulated,
            _event("1.2.3.999.1", "0.0002"),
            _event("1.2.3.999.2", "0.00022"),
        ],
    )


def _plane_dose(plane: str, dap: str, rp_dose: str, fluoro_time: str) -> dict[str, Any]:
    """TID 10002 Accumulated X-Ray Dose of one plane, with TID 10004 fluoroscopy totals."""
    return _item(
        "CONTAINER",
        code("113702", "DCM", "Accumulated X-Ray Dose Data"),
        children=[
            _item("CODE", code("113764", "DCM", "Acquisition Plane"), code=PLANES[plane]),
            _num(code("113726", "DCM", "Fluoro Dose Area Product Total"), dap, "Gy.m2", "Gy.m2"),
            _num(code("113730", "DCM", "Total Fluoro Time"), fluoro_time, "s", "s"),
            _num(code("113722", "DCM", "Dose Area Product Total"), dap, "Gy.m2", "Gy.m2"),
            _num(code("113725", "DCM", "Dose (RP) Total"), rp_dose, "Gy", "Gy"),
        ],
    )


def biplane_dose_sr(series: int = 9, number: int = 2) -> dict[str, Any]:
    """A biplane angiography X-Ray Radiation Dose SR: plane A and plane B accumulated doses and one
    event per plane; no Procedure reported item (inferred), no offsets (the default zone applies)."""
    return _dose_report(
        series,
        number,
        [
            _item("DATETIME", code("113809", "DCM", "Start of X-Ray Irradiation"), dt="20240315094500"),
            _plane_dose("A", "0.00310", "0.152", "412"),
            _plane_dose("B", "0.00120", "0.061", "188"),
            _event("1.2.3.998.1", "0.00031", plane="A", rp_dose="0.015", started="20240315094500"),
            _event("1.2.3.998.2", "0.00012", plane="B", rp_dose="0.006", started="20240315094510"),
        ],
        {"00080201": el("SH", "+0100")},
    )


def _ct_acquisition(uid: str, started: str, ctdi: str, dlp: str) -> dict[str, Any]:
    """TID 10013 CT Irradiation Event Data."""
    dose = _item(
        "CONTAINER",
        code("113829", "DCM", "CT Dose"),
        children=[
            _num(code("113830", "DCM", "Mean CTDIvol"), ctdi, "mGy", "mGy"),
            _item(
                "CODE",
                code("113835", "DCM", "CTDIw Phantom Type"),
                code=code("113691", "DCM", "IEC Body Dosimetry Phantom"),
            ),
            _num(code("113838", "DCM", "DLP"), dlp, "mGy.cm", "mGy.cm"),
        ],
    )
    return _item(
        "CONTAINER",
        code("113819", "DCM", "CT Acquisition"),
        children=[
            _item("CODE", code("123014", "DCM", "Target Region"), code=code("T-D3000", "SRT", "Chest")),
            _item(
                "CODE",
                code("113820", "DCM", "CT Acquisition Type"),
                code=code("116152004", "SCT", "Spiral Acquisition"),
            ),
            _item("UIDREF", code("113769", "DCM", "Irradiation Event UID"), uid=uid),
            _item("DATETIME", code("111526", "DCM", "DateTime Started"), dt=started),
            dose,
        ],
    )


def ct_dose_sr(study: str = "1.2.826.0.1.3680043.8.498.2") -> list[dict[str, Any]]:
    """A CT study in July with a CT Radiation Dose SR (TID 10011) whose date-times carry no offset,
    and no Timezone Offset From UTC: the IANA default zone (summer time) must fill in. The legacy
    SRT codes (procedure, target region) must come out as SNOMED CT."""
    common = {k: v for k, v in common_study_attributes().items() if k != "00080201"}
    common.update({"00080020": el("DA", "20240715"), "00080030": el("TM", "091500")})
    image = instance(1, 1, study=study, extra={**common, "00180015": el("CS", "CHEST")})
    report = [
        _item(
            "CODE",
            code("121058", "DCM", "Procedure reported"),
            code=code("P5-08000", "SRT", "Computed Tomography X-Ray"),
        ),
        _item("DATETIME", code("113809", "DCM", "Start of X-Ray Irradiation"), dt="20240715091700"),
        _item(
            "CONTAINER",
            code("113811", "DCM", "CT Accumulated Dose Data"),
            children=[
                _num(code("113812", "DCM", "Total Number of Irradiation Events"), "2", "{events}", "events"),
                _num(code("113813", "DCM", "CT Dose Length Product Total"), "512.3", "mGy.cm", "mGy.cm"),
            ],
        ),
        _ct_acquisition("1.2.3.997.1", "20240715091700", "12.5", "250.1"),
        _ct_acquisition("1.2.3.997.2", "20240715092130", "13.1", "262.2"),
    ]
    sr = instance(
        9,
        1,
        study=study,
        modality="SR",
        sop_class=XRAY_DOSE_SR,
        extra={
            **common,
            "00080023": el("DA", "20240715"),
            "00080033": el("TM", "093000"),
            "0040A040": el("CS", "CONTAINER"),
            "0040A043": el("SQ", code("113701", "DCM", "X-Ray Radiation Dose Report")),
            "0040A730": el("SQ", *report),
        },
    )
    return [image, sr]


def entry(
    sequence: int, data: dict[str, Any] | None, action: ChangeAction = ChangeAction.CREATE, **uids: str
) -> ChangeEntry:
    """A change-feed entry for `data` (UIDs taken from it unless given)."""

    def uid(tag: str) -> str:
        return str(data[tag]["Value"][0]) if data and tag in data and "Value" in data[tag] else ""

    return ChangeEntry(
        sequence=sequence,
        action=action,
        study_uid=uids.get("study", uid("0020000D")),
        series_uid=uids.get("series", uid("0020000E")),
        sop_instance_uid=uids.get("sop", uid("00080018")),
        state=ChangeState.CURRENT,
        metadata=data if action is not ChangeAction.DELETE else None,
    )


def delete(sequence: int, data: dict[str, Any]) -> ChangeEntry:
    return ChangeEntry(
        sequence=sequence,
        action=ChangeAction.DELETE,
        study_uid=data["0020000D"]["Value"][0],
        series_uid=data["0020000E"]["Value"][0],
        sop_instance_uid=data["00080018"]["Value"][0],
        state=ChangeState.DELETED,
    )
