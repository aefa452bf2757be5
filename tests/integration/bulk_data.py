"""Many small DICOM instances, fast: pydicom's CT_small without its pixels, given new UIDs, sent to
Orthanc over a few connections at once. Also what FHIR must hold afterwards, and checks of it."""

from __future__ import annotations

import io
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.peers import Peer
from tests.sample_data import bundled

PREFIX = "1.2.826.0.1.3680043.10.1234.9."


@dataclass
class Instance:
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    patient_id: str
    data: bytes


@dataclass
class Bulk:
    instances: list[Instance] = field(default_factory=list)

    def studies(self) -> dict[str, set[str]]:
        """study uid -> SOP Instance UIDs."""
        found: dict[str, set[str]] = {}
        for i in self.instances:
            found.setdefault(i.study_uid, set()).add(i.sop_instance_uid)
        return found

    def patients(self) -> set[str]:
        return {i.patient_id for i in self.instances}


def make_bulk(tag: str, studies: int, per_study: int, series_per_study: int = 2, patients: int | None = None) -> Bulk:
    """`studies` studies of `per_study` instances; two studies share a patient unless told otherwise."""
    template = pydicom.dcmread(bundled("CT_small.dcm"))
    del template.PixelData  # metadata is all dicomcast reads; keeps Orthanc fast
    for keyword in ("OtherPatientIDs", "OtherPatientIDsSequence"):
        if keyword in template:
            delattr(template, keyword)  # one identifier per Patient keeps the duplicate check simple
    bulk = Bulk()
    patient_count = patients or max(1, studies // 2)
    for s in range(studies):
        study_uid = generate_uid(PREFIX, entropy_srcs=[f"{tag}/study/{s}"])
        series = [generate_uid(PREFIX, entropy_srcs=[f"{tag}/series/{s}/{k}"]) for k in range(series_per_study)]
        patient_id = f"BULK-{tag}-{s % patient_count}"
        for n in range(per_study):
            sop = generate_uid(PREFIX, entropy_srcs=[f"{tag}/sop/{s}/{n}"])
            ds = _instance(template, study_uid, series[n % series_per_study], sop, patient_id, n)
            bulk.instances.append(Instance(study_uid, series[n % series_per_study], sop, patient_id, ds))
    return bulk


def _instance(template: Dataset, study: str, series: str, sop: str, patient_id: str, number: int) -> bytes:
    ds = template.copy()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.PatientID = patient_id
    ds.PatientName = f"Bulk^{patient_id}"
    ds.AccessionNumber = f"A{abs(hash(study)) % 10**8}"
    ds.InstanceNumber = number + 1
    ds.SeriesNumber = int(series.rsplit(".", 1)[1]) % 1000
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def upload(orthanc: Peer, instances: Iterable[Instance], connections: int = 8) -> None:
    auth = (orthanc.extra["username"], orthanc.extra["password"])
    with httpx.Client(
        base_url=orthanc.url, auth=auth, timeout=60, limits=httpx.Limits(max_connections=connections)
    ) as client:

        def send(instance: Instance) -> None:
            # Orthanc answered 500 to one of eight parallel uploads once on a loaded machine (its
            # SQLite index busy); storing the same instance again is harmless, so the test data is retried.
            for attempt in range(5):
                response = client.post("/instances", content=instance.data)
                if response.status_code < 500 or attempt == 4:
                    response.raise_for_status()
                    return
                time.sleep(0.2 * (attempt + 1))

        with ThreadPoolExecutor(connections) as pool:
            list(pool.map(send, instances))


def orthanc_sequences(orthanc: Peer) -> dict[str, int]:
    """SOP Instance UID -> the Seq of its NewInstance change in Orthanc's log."""
    auth = (orthanc.extra["username"], orthanc.extra["password"])
    found: dict[str, int] = {}
    since = 0
    with httpx.Client(base_url=orthanc.url, auth=auth, timeout=60) as client:
        instance_uid = {}
        for item in client.get("/instances", params={"expand": ""}).json():
            instance_uid[item["ID"]] = item["MainDicomTags"]["SOPInstanceUID"]
        while True:
            body = client.get("/changes", params={"since": str(since), "limit": "1000"}).json()
            for change in body["Changes"]:
                if change["ChangeType"] == "NewInstance" and change["ID"] in instance_uid:
                    found[instance_uid[change["ID"]]] = int(change["Seq"])
            since = int(body["Last"])
            if body["Done"]:
                return found


def study_uid_of(study: dict[str, Any]) -> str:
    value = next(i["value"] for i in study["identifier"] if i["system"] == "urn:dicom:uid")
    return str(value).removeprefix("urn:oid:")


def instances_in(study: dict[str, Any]) -> list[str]:
    return [i["uid"] for s in study.get("series", []) for i in s.get("instance", [])]


def check_no_duplicates(snap: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Problems: two ImagingStudies of one study, two Patients of one id, an instance listed twice,
    more than one Endpoint, an Observation twice."""
    problems = []
    uids = [study_uid_of(s) for s in snap["ImagingStudy"].values()]
    problems += [f"ImagingStudy of {u} twice" for u in {u for u in uids if uids.count(u) > 1}]
    ids = [i["value"] for p in snap["Patient"].values() for i in p.get("identifier", [])]
    problems += [f"Patient {v[:6]}... twice" for v in {v for v in ids if ids.count(v) > 1}]
    for study in snap["ImagingStudy"].values():
        listed = instances_in(study)
        if len(listed) != len(set(listed)):
            problems.append(f"instance listed twice in {study_uid_of(study)}")
        if study.get("numberOfInstances") != len(listed):
            problems.append(f"numberOfInstances of {study_uid_of(study)} is not the count of its instances")
    if len(snap["Endpoint"]) > 1:
        problems.append(f"{len(snap['Endpoint'])} Endpoints")
    return problems


def missing(snap: dict[str, dict[str, dict[str, Any]]], bulk: Bulk, wanted: set[str]) -> list[str]:
    """SOP Instance UIDs in `wanted` that no ImagingStudy lists (lost), or whose patient is absent."""
    listed = {uid for s in snap["ImagingStudy"].values() for uid in instances_in(s)}
    lost = sorted(wanted - listed)
    patients = {i["value"] for p in snap["Patient"].values() for i in p.get("identifier", [])}
    lost_patients = {i.patient_id for i in bulk.instances if i.sop_instance_uid in wanted} - patients
    return lost + [f"patient {p}" for p in sorted(lost_patients)]


def exact(snap: dict[str, dict[str, dict[str, Any]]], bulk: Bulk) -> list[str]:
    """Problems with FHIR holding exactly the bulk: every study with exactly its instances, every
    patient, one Endpoint, nothing else."""
    problems = check_no_duplicates(snap)
    held = {study_uid_of(s): set(instances_in(s)) for s in snap["ImagingStudy"].values()}
    expected = bulk.studies()
    problems += [f"study {u} missing" for u in expected.keys() - held.keys()]
    problems += [f"study {u} not expected" for u in held.keys() - expected.keys()]
    for uid in expected.keys() & held.keys():
        if held[uid] != expected[uid]:
            problems.append(
                f"study {uid}: {len(expected[uid] - held[uid])} lost, {len(held[uid] - expected[uid])} extra"
            )
    patients = {i["value"] for p in snap["Patient"].values() for i in p.get("identifier", [])}
    if patients != bulk.patients():
        problems.append(f"patients: {len(bulk.patients() - patients)} lost, {len(patients - bulk.patients())} extra")
    if len(snap["Endpoint"]) != 1:
        problems.append(f"{len(snap['Endpoint'])} Endpoints, not 1")
    return problems
