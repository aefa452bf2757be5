"""Differences made on purpose in a real FHIR server, and the checks that FHIR matches DICOM again."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.sync_helpers import json_lines, snapshot
from tests.peers import Peer

Study = dict[str, Any]
Expected = dict[str, dict[str, set[str]]]  # study uid -> series uid -> SOP instance uids


def study_uid_of(study: Study) -> str:
    value = next(i["value"] for i in study["identifier"] if i.get("system") == "urn:dicom:uid")
    return str(value).removeprefix("urn:oid:")


def studies_by_uid(fhir: Peer) -> dict[str, list[Study]]:
    found: dict[str, list[Study]] = {}
    for study in snapshot(fhir)["ImagingStudy"].values():
        found.setdefault(study_uid_of(study), []).append(study)
    return found


def edit_study(fhir: Peer, study: Study, change: Callable[[Study], None]) -> None:
    body = copy.deepcopy(study)
    change(body)
    body["meta"] = {"source": study["meta"]["source"]}
    response = httpx.put(f"{fhir.url}/ImagingStudy/{study['id']}", json=body, timeout=30)
    assert response.status_code in (200, 201), response.text


def _recount(study: Study) -> None:
    for series in study["series"]:
        series["numberOfInstances"] = len(series["instance"])
    study["numberOfSeries"] = len(study["series"])
    study["numberOfInstances"] = sum(len(s["instance"]) for s in study["series"])


def drop_series(study: Study) -> None:
    study["series"].pop(0)
    _recount(study)


def drop_instance(study: Study) -> None:
    biggest = max(study["series"], key=lambda s: len(s["instance"]))
    biggest["instance"].pop()
    _recount(study)


def wrong_counts(study: Study) -> None:
    study["numberOfInstances"] += 5
    study.pop("numberOfSeries", None)
    study["series"][0]["numberOfInstances"] += 1


def drop_modality(study: Study) -> None:
    """Study modality absent (DICOM Cast never wrote it), one series' modality wrong (R4 requires one)."""
    study.pop("modality", None)
    study["series"][0]["modality"] = {**study["series"][0]["modality"], "code": "OT"}


def add_duplicate(fhir: Peer, study: Study) -> tuple[str, str]:
    """A second ImagingStudy of this source for the same UID (server id, as a racing writer leaves it)
    and an Observation that references it. Returns (duplicate id, observation id)."""
    body = {k: v for k, v in copy.deepcopy(study).items() if k != "id"}
    body["meta"] = {"source": study["meta"]["source"]}
    created = httpx.post(f"{fhir.url}/ImagingStudy", json=body, timeout=30)
    assert created.status_code == 201, created.text
    extra_id = created.json()["id"]
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "reading of the study"},
        "partOf": [{"reference": f"ImagingStudy/{extra_id}"}],
    }
    made = httpx.post(f"{fhir.url}/Observation", json=observation, timeout=30)
    assert made.status_code == 201, made.text
    return extra_id, made.json()["id"]


def structure(study: Study) -> dict[str, set[str]]:
    return {s["uid"]: {i["uid"] for i in s.get("instance", [])} for s in study.get("series", [])}


def assert_matches(fhir: Peer, expected: Expected) -> dict[str, Study]:
    """One ImagingStudy per DICOM study, nothing else, with DICOM's series, instances, counts and
    modalities. Returns them by study UID."""
    found = studies_by_uid(fhir)
    duplicated = {uid: len(v) for uid, v in found.items() if len(v) > 1}
    assert duplicated == {}, f"duplicates left: {duplicated}"
    assert set(found) == set(expected)
    studies = {uid: v[0] for uid, v in found.items()}
    for uid, study in studies.items():
        assert structure(study) == expected[uid], uid
        assert study["numberOfSeries"] == len(expected[uid])
        assert study["numberOfInstances"] == sum(len(v) for v in expected[uid].values())
        assert all(s["numberOfInstances"] == len(s["instance"]) for s in study["series"])
        assert all(s.get("modality", {}).get("code") for s in study["series"]), uid
        assert study.get("modality"), uid
        assert study["meta"]["source"].endswith(("/v1", "/v2", "/dicom-web")), uid
    return studies


def differences(stdout: str) -> dict[str, list[str]]:
    """study uid -> the difference lines a run logged (JSON logs)."""
    found: dict[str, list[str]] = {}
    for line in json_lines(stdout):
        if line.get("event") == "difference":
            found[str(line["study_uid"])] = [str(d) for d in line["differences"]]
    return found


def kinds(lines: list[str]) -> set[str]:
    return {line.split(":", 1)[0] for line in lines}


def summary(stdout: str) -> dict[str, Any]:
    return next(line for line in json_lines(stdout) if line.get("event") == "reconcile summary")
