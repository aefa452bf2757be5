"""A DICOM Cast-pattern FHIR writer: fills a FHIR server the way Microsoft's DICOM Cast did, so that
the switch-over tests start from what a DICOM Cast deployment leaves behind.

What it does follows /work/shared/reference/dicomcast.md §2.2 and §3 and DICOM Cast's source
(microsoft/dicom-server eeefbe4d, converter/dicom-cast: EndpointPipelineStep.cs,
ImagingStudyUpsertHandler.cs, ImagingStudy*Synchronizer.cs, ObservationParser.cs):
- the v1 change feed read with `offset` (exclusive) and `limit=10`, entries in sequence order;
- per entry: search Endpoint, Patient and ImagingStudy, then ONE transaction with conditional
  creates (`ifNoneExist`, `urn:uuid` fullUrls: the server assigns the ids) or `If-Match` updates,
  entries in DICOM Cast's order: Endpoint, ImagingStudy, Observation(s), Patient;
- Endpoint name "DICOM WADO-RS endpoint <DicomWeb:Endpoint as Uri.ToString()>";
- Patient identifier system = Patient:PatientSystemId (empty by default: no system);
- ImagingStudy: meta.source, series modality system "DCM", sopClass the bare UID, StudyDescription
  as a note, accession identifier without system, no counts;
- dose Observations: plain POSTs, identified by the study identifier, status preliminary.
It is a test peer: it never runs against anything but a loopback server.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx

DicomJson = dict[str, Any]
STUDY_SYSTEM = "urn:dicom:uid"
CONNECTION_TYPE = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SCT = "http://snomed.info/sct"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
LIMIT = 10  # ChangeFeedProcessor.DefaultLimit
_GENDER = {"M": "male", "F": "female", "O": "other"}
# ObservationConstants: triggers and the component codes each kind collects.
_SUMMARY_TRIGGERS = {"113701", "113500"}
_EVENT_TRIGGERS = {"113706", "113819", "113502"}
_SUMMARY_CODES = [
    "113725", "111637", "113722", "113726", "113727", "113730", "113731", "113507",
    "113813", "113812", "113830", "349358000", "123005", "89457008", "410675002",
]  # fmt: skip
_EVENT_CODES = ["113830", "113838", "113835"]
_INTEGER_CODES = {"113731", "113812"}
_TEXT_CODES = {"349358000", "89457008"}
_CODE_CODES = {"410675002", "113835"}


def dotnet_uri_string(url: str) -> str:
    """What .NET's `Uri.ToString()` gives for a configured endpoint: a bare host gets a slash."""
    return url if urlsplit(url).path else f"{url}/"


def _value(data: DicomJson, tag: str) -> Any:
    values = (data.get(tag) or {}).get("Value") or []
    return values[0] if values else None


def _seq(data: DicomJson, tag: str) -> list[DicomJson]:
    return list((data.get(tag) or {}).get("Value") or [])


def _code(item: DicomJson) -> tuple[str, str, str] | None:
    names = _seq(item, "0040A043")
    if not names:
        return None
    return (str(_value(names[0], "00080100")), str(_value(names[0], "00080102")), str(_value(names[0], "00080104")))


def _system(scheme: str) -> str:
    return {"DCM": DCM, "Sct": SCT}.get(scheme, scheme)


class DicomCastWriter:
    """`sync_feed(dicom_url, up_to)` reads the v1 feed and writes each entry as DICOM Cast did."""

    def __init__(
        self,
        fhir_url: str,
        dicom_web_endpoint: str,
        patient_system_id: str = "",
        generate_observations: bool = True,
        token: str | None = None,
        is_issuer_id_used: bool = False,
    ) -> None:
        headers = {"Accept": "application/fhir+json"} | ({"Authorization": f"Bearer {token}"} if token else {})
        self.fhir = httpx.Client(base_url=fhir_url, timeout=60, headers=headers)
        self.endpoint = dotnet_uri_string(dicom_web_endpoint)
        self.patient_system = patient_system_id
        self.is_issuer_id_used = is_issuer_id_used  # Patient:IsIssuerIdUsed: the raw issuer is the system
        self.generate_observations = generate_observations
        self.transactions = 0

    def close(self) -> None:
        self.fhir.close()

    def sync_feed(self, dicom_url: str, up_to: int, dicom_token: str | None = None) -> int:
        """Entries 1..up_to of `<dicom_url>/v1/changefeed`; returns DICOM Cast's SyncedSequence."""
        synced = 0
        headers = {"Authorization": f"Bearer {dicom_token}"} if dicom_token else {}
        with httpx.Client(timeout=60, headers=headers) as dicom:
            while synced < up_to:
                params = {"offset": str(synced), "limit": str(LIMIT), "includeMetadata": "true"}
                page = dicom.get(f"{dicom_url.rstrip('/')}/v1/changefeed", params=params).json()
                page = [e for e in page if int(e["sequence"]) <= up_to]
                if not page:
                    break
                for entry in page:
                    self.sync_entry(entry)
                synced = int(page[-1]["sequence"])
        return synced

    def sync_entry(self, entry: dict[str, Any]) -> None:
        action, state = str(entry["action"]).lower(), str(entry["state"]).lower()
        if action == "create" and state == "deleted":
            return  # created then deleted before it was read
        if action == "delete":
            self._delete(entry)
            return
        metadata = entry.get("metadata")
        if not metadata:
            return
        context = _Transaction()
        endpoint_ref = self._endpoint(context)
        patient_ref = self._patient(metadata, context)
        study_ref = self._study(entry, metadata, patient_ref, endpoint_ref, context)
        if self.generate_observations:
            for observation in _observations(metadata, patient_ref, study_ref, self._study_identifier(entry)):
                context.add("Observation", observation, {"method": "POST", "url": "Observation"})
        self._commit(context)

    # -- steps, in DICOM Cast's pipeline order (Patient, Endpoint, ImagingStudy, Observation) --
    def _search(self, kind: str, params: dict[str, str]) -> dict[str, Any] | None:
        bundle = self.fhir.get(f"/{kind}", params=params).json()
        found = [e["resource"] for e in bundle.get("entry", []) if e.get("resource", {}).get("resourceType") == kind]
        if len(found) > 1:
            raise AssertionError(f"DICOM Cast would fail this entry: {len(found)} {kind} match")
        return found[0] if found else None

    def _endpoint(self, context: _Transaction) -> str:
        name = f"DICOM WADO-RS endpoint {self.endpoint}"
        query = f"name={name}&connection-type={CONNECTION_TYPE}|dicom-wado-rs"
        found = self._search("Endpoint", {"name": name, "connection-type": f"{CONNECTION_TYPE}|dicom-wado-rs"})
        if found is not None:
            if found.get("name") != name:  # FHIR's name search matches prefixes; DICOM Cast took the hit
                raise AssertionError("DICOM Cast would refuse an Endpoint with another address")
            return f"Endpoint/{found['id']}"
        endpoint = {
            "resourceType": "Endpoint",
            "status": "active",
            "connectionType": {"system": CONNECTION_TYPE, "code": "dicom-wado-rs"},
            "name": name,
            "payloadType": [{"text": "DICOM WADO-RS"}],
            "payloadMimeType": ["application/dicom"],
            "address": self.endpoint,
        }
        return context.add("Endpoint", endpoint, {"method": "POST", "url": "Endpoint", "ifNoneExist": query})

    def _patient(self, metadata: DicomJson, context: _Transaction) -> str:
        patient_id = _value(metadata, "00100020")
        if not patient_id:
            raise AssertionError("DICOM Cast fails entries without PatientID")
        system = str(_value(metadata, "00100021") or "") if self.is_issuer_id_used else self.patient_system
        token = f"{system}|{patient_id}"
        existing = self._search("Patient", {"identifier": token})
        patient = dict(existing) if existing else {"resourceType": "Patient"}
        if existing is None:
            identifier = {"system": system, "value": patient_id} if system else {"value": patient_id}
            patient["identifier"] = [identifier]
            birth = _value(metadata, "00100030")
            if birth and len(birth) == 8:
                patient["birthDate"] = f"{birth[:4]}-{birth[4:6]}-{birth[6:]}"
        name = _value(metadata, "00100010")
        alphabetic = str((name or {}).get("Alphabetic", "")).strip() if isinstance(name, dict) else ""
        if alphabetic:
            parts = alphabetic.split("^") + [""] * 5
            usual: dict[str, Any] = {"use": "usual"}
            if parts[0]:
                usual["family"] = parts[0]
            given = [g for g in f"{parts[1]} {parts[2]}".split() if g]
            if given:
                usual["given"] = given
            if parts[3]:
                usual["prefix"] = [parts[3]]
            if parts[4]:
                usual["suffix"] = [parts[4]]
            others = [n for n in patient.get("name", []) if n.get("use") != "usual"]
            patient["name"] = [*others, usual]
        sex = _value(metadata, "00100040")
        if sex in _GENDER:
            patient["gender"] = _GENDER[sex]
        else:
            patient.pop("gender", None)
        if existing is None:
            return context.add(
                "Patient", patient, {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={token}"}
            )
        if _body(patient) != _body(existing):
            context.add("Patient", patient, _update(existing))
        return f"Patient/{existing['id']}"

    def _study_identifier(self, entry: dict[str, Any]) -> dict[str, str]:
        return {"system": STUDY_SYSTEM, "value": f"urn:oid:{entry['studyInstanceUid']}"}

    def _study(
        self, entry: dict[str, Any], metadata: DicomJson, patient: str, endpoint: str, context: _Transaction
    ) -> str:
        identifier = self._study_identifier(entry)
        token = f"{STUDY_SYSTEM}|{identifier['value']}"
        existing = self._search("ImagingStudy", {"identifier": token})
        if existing is None:
            study: dict[str, Any] = {
                "resourceType": "ImagingStudy",
                "meta": {"source": self.endpoint},
                "identifier": [identifier],
                "status": "available",
                "subject": {"reference": patient},
            }
        else:
            study = _copy(existing)
        _study_properties(study, metadata, endpoint)
        _series_and_instance(study, entry, metadata)
        if existing is None:
            request = {"method": "POST", "url": "ImagingStudy", "ifNoneExist": f"identifier={token}"}
            return context.add("ImagingStudy", study, request)
        if _body(study) != _body(existing):
            context.add("ImagingStudy", study, _update(existing))
        return f"ImagingStudy/{existing['id']}"

    def _delete(self, entry: dict[str, Any]) -> None:
        """ImagingStudyDeleteHandler + ObservationDeleteHandler."""
        token = f"{STUDY_SYSTEM}|urn:oid:{entry['studyInstanceUid']}"
        existing = self._search("ImagingStudy", {"identifier": token})
        if existing is None:
            return
        study = _copy(existing)
        for series in study.get("series", []):
            series["instance"] = [i for i in series.get("instance", []) if i["uid"] != entry["sopInstanceUid"]]
        study["series"] = [s for s in study.get("series", []) if s["instance"]]
        context = _Transaction()
        if not study["series"] and (study.get("meta") or {}).get("source") == self.endpoint:
            context.entries.append({"request": {"method": "DELETE", "url": f"ImagingStudy/{existing['id']}"}})
        else:
            if not study["series"]:
                study.pop("series")
            context.add("ImagingStudy", study, _update(existing))
        if self.generate_observations:
            bundle = self.fhir.get("/Observation", params={"identifier": token}).json()
            for hit in bundle.get("entry", []):
                context.entries.append({"request": {"method": "DELETE", "url": f"Observation/{hit['resource']['id']}"}})
        self._commit(context)

    def _commit(self, context: _Transaction) -> None:
        if not context.entries:
            return
        order = {"Endpoint": 0, "ImagingStudy": 1, "Observation": 2, "Patient": 3}
        entries = sorted(context.entries, key=lambda e: order.get(e.get("resource", {}).get("resourceType"), 1))
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        response = self.fhir.post("/", json=bundle, headers={"Content-Type": "application/fhir+json"})
        if response.status_code != 200:
            raise AssertionError(
                f"DICOM Cast-pattern transaction refused: {response.status_code} {response.text[:300]}"
            )
        self.transactions += 1


class _Transaction:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(self, kind: str, resource: dict[str, Any], request: dict[str, Any]) -> str:
        entry: dict[str, Any] = {"resource": resource, "request": request}
        if request["method"] == "POST":
            entry["fullUrl"] = f"urn:uuid:{uuid.uuid4()}"  # ClientResourceId
            self.entries.append(entry)
            return str(entry["fullUrl"])
        self.entries.append(entry)
        return f"{kind}/{resource['id']}"


def _copy(resource: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(resource)


def _body(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


def _update(existing: dict[str, Any]) -> dict[str, Any]:
    kind, rid = existing["resourceType"], existing["id"]
    return {"method": "PUT", "url": f"{kind}/{rid}", "ifMatch": f'W/"{existing["meta"]["versionId"]}"'}


def _date_time(date: str | None, time: str | None, offset: str | None) -> str | None:
    """FhirDateTime with milliseconds; both date and time needed; a missing offset is UTC."""
    if not date or not time or len(date) != 8:
        return None
    clock = (time.split(".")[0] + "000000")[:6]
    fraction = (time.split(".")[1] if "." in time else "") + "000"
    zone = f"{offset[:3]}:{offset[3:]}" if offset and len(offset) == 5 else "+00:00"
    return f"{date[:4]}-{date[4:6]}-{date[6:]}T{clock[:2]}:{clock[2:4]}:{clock[4:]}.{fraction[:3]}{zone}"


def _study_properties(study: dict[str, Any], metadata: DicomJson, endpoint: str) -> None:
    offset = _value(metadata, "00080201")
    started = _date_time(_value(metadata, "00080020"), _value(metadata, "00080030"), offset)
    if started:
        study["started"] = started
    else:
        study.pop("started", None)
    endpoints = study.setdefault("endpoint", [])
    if {"reference": endpoint} not in endpoints:
        endpoints.append({"reference": endpoint})
    modality = _value(metadata, "00080060")
    if modality and "00080061" in metadata:
        codes = study.setdefault("modality", [])
        if not any(str(c.get("code", "")).lower() == modality.lower() for c in codes):
            codes.append({"system": "DCM", "code": modality})
    description = _value(metadata, "00081030")
    if description:
        notes = study.setdefault("note", [])
        if {"text": description} not in notes:
            notes.append({"text": description})
    accession = _value(metadata, "00080050")
    if accession:
        identifier = {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "value": accession}
        if identifier not in study["identifier"]:
            study["identifier"].append(identifier)


def _series_and_instance(study: dict[str, Any], entry: dict[str, Any], metadata: DicomJson) -> None:
    series_list = study.setdefault("series", [])
    series = next((s for s in series_list if s["uid"] == entry["seriesInstanceUid"]), None)
    if series is None:
        series = {"uid": entry["seriesInstanceUid"], "instance": []}
        series_list.append(series)
    instance = next((i for i in series["instance"] if i["uid"] == entry["sopInstanceUid"]), None)
    if instance is None:
        instance = {"uid": entry["sopInstanceUid"]}
        series["instance"].append(instance)
    number = _value(metadata, "00200011")
    if number is not None:
        series["number"] = int(number)
    description = _value(metadata, "0008103E")
    if description:
        series["description"] = description
    series["modality"] = {"system": "DCM", "code": _value(metadata, "00080060")}
    started = _date_time(_value(metadata, "00080021"), _value(metadata, "00080031"), _value(metadata, "00080201"))
    if started:
        series["started"] = started
    instance["sopClass"] = {"code": _value(metadata, "00080016")}
    instance_number = _value(metadata, "00200013")
    if instance_number is not None:
        instance["number"] = int(instance_number)


# -- ObservationParser.cs --
def _observations(node: DicomJson, patient: str, study: str, identifier: dict[str, str]) -> list[dict[str, Any]]:
    """Depth first: a node that is a trigger yields an Observation, then its children are visited."""
    found: list[dict[str, Any]] = []
    code = _code(node)
    if code is not None:
        if code[0] in _EVENT_TRIGGERS and _child_value(node, "113769") is not None:
            found.append(_event(node, patient, identifier))
        if code[0] in _SUMMARY_TRIGGERS:
            found.append(_summary(node, patient, study, identifier))
    for child in _seq(node, "0040A730"):
        found += _observations(child, patient, study, identifier)
    return found


def _child(node: DicomJson, code: str) -> DicomJson | None:
    return next((c for c in _seq(node, "0040A730") if (_code(c) or ("",))[0] == code), None)


def _child_value(node: DicomJson, code: str) -> Any:
    child = _child(node, code)
    if child is None:
        return None
    return _value(child, "0040A124") or _value(child, "0040A160") or _seq(child, "0040A168") or _seq(child, "0040A300")


def _component(node: DicomJson, code: str) -> dict[str, Any] | None:
    child = _child(node, code)
    if child is None:
        return None
    name = _code(child)
    assert name is not None
    concept = {"coding": [{"system": _system(name[1]), "code": name[0], "display": name[2]}]}
    if code in _TEXT_CODES:
        text = _value(child, "0040A160")
        return {"code": concept, "valueString": text} if text else None
    if code in _CODE_CODES:
        values = _seq(child, "0040A168")
        if not values:
            return None
        value = values[0]
        coding = {"system": _system(name[1]), "code": _value(value, "00080100"), "display": _value(value, "00080104")}
        return {"code": concept, "valueCodeableConcept": {"coding": [coding]}}
    measured = _seq(child, "0040A300")
    if not measured:
        return None
    number = _value(measured[0], "0040A30A")
    if code in _INTEGER_CODES:
        count = int(float(number or 0))
        return {"code": concept, "valueInteger": count} if count else None
    units = _seq(measured[0], "004008EA")
    unit = str(_value(units[0], "00080100")) if units else None
    quantity: dict[str, Any] = {"value": float(number)}
    if unit:
        quantity["unit"] = unit
    return {"code": concept, "valueQuantity": quantity}


def _components(node: DicomJson, codes: list[str]) -> list[dict[str, Any]]:
    """ApplyDicomTransforms: every listed code among this node's children, then each child's."""
    found = [c for c in (_component(node, code) for code in codes) if c is not None]
    for child in _seq(node, "0040A730"):
        found += _components(child, codes)
    return found


def _summary(node: DicomJson, patient: str, study: str, identifier: dict[str, str]) -> dict[str, Any]:
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [identifier],
        "status": "preliminary",
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": "73569-6",
                    "display": "Radiation exposure and protection information",
                }
            ]
        },
        "subject": {"reference": patient},
        "partOf": [{"reference": study}],
    }
    accession = _child_value(node, "121022") or _value(node, "00080050")
    if isinstance(accession, str) and accession:
        observation["identifier"].append(
            {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "value": accession}
        )
    components = _components(node, _SUMMARY_CODES)
    if components:
        observation["component"] = components
    return observation


def _event(node: DicomJson, patient: str, identifier: dict[str, str]) -> dict[str, Any]:
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [identifier],
        "status": "preliminary",
        "code": {"coding": [{"system": DCM, "code": "113852", "display": "Irradiation Event"}]},
        "subject": {"reference": patient},
    }
    region = _child(node, "123014")
    if region is not None and _seq(region, "0040A168"):
        site = _seq(region, "0040A168")[0]
        scheme = str(_value(site, "00080102"))
        observation["bodySite"] = {
            "coding": [
                {"system": _system(scheme), "code": _value(site, "00080100"), "display": _value(site, "00080104")}
            ]
        }
    components = _components(node, _EVENT_CODES)
    if components:
        observation["component"] = components
    return observation
