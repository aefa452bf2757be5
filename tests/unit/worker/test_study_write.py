"""How a study's output becomes FHIR transactions: order, If-Match, and the bundle limit."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from dicomcast.dicom.models import ChangeAction, ChangeEntry
from dicomcast.errors import MappingError
from dicomcast.fhir.client import FhirClient
from dicomcast.fhir.mapping.types import SourceContext, StudyInput, StudyOutput
from dicomcast.worker import study_write as study
from dicomcast.worker.context import SyncContext


def _fhir(seen: list[dict[str, Any]]) -> FhirClient:
    def handle(request: httpx.Request) -> httpx.Response:
        bundle = json.loads(request.content)
        seen.append(bundle)
        entries = [{"response": {"status": "200 OK", "etag": 'W/"7"'}} for _ in bundle["entry"]]
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": entries})

    return FhirClient(httpx.Client(base_url="http://fhir.test", transport=httpx.MockTransport(handle)))


def test_patients_then_study_then_observations_with_if_match() -> None:
    output = StudyOutput(
        imaging_study={"resourceType": "ImagingStudy", "id": "s", "meta": {"versionId": "3", "source": "x"}},
        patients=[{"resourceType": "Patient", "id": "p"}],
        observations=[{"resourceType": "Observation", "id": "o", "meta": {"versionId": "1"}}],
        delete_observations=[{"resourceType": "Observation", "id": "gone"}],
    )

    entries = study.transaction_entries(output)

    assert [e["request"]["method"] + " " + e["request"]["url"] for e in entries] == [
        "PUT Patient/p",
        "PUT ImagingStudy/s",
        "PUT Observation/o",
        "DELETE Observation/gone",
    ]
    assert "ifMatch" not in entries[0]["request"]  # a new Patient: no version to match
    assert entries[1]["request"]["ifMatch"] == 'W/"3"'
    assert entries[1]["resource"]["meta"] == {"source": "x"}  # server-managed meta is not sent


def test_more_entries_than_a_bundle_holds_are_split() -> None:
    seen: list[dict[str, Any]] = []
    ctx = SyncContext(source=None, fhir=_fhir(seen), store=None, options=None)  # type: ignore[arg-type]
    planned = [{"request": {"method": "PUT", "url": f"Observation/{i}"}, "resource": {}} for i in range(1201)]

    outcomes = study.write_alone(ctx, planned)

    assert [len(b["entry"]) for b in seen] == [500, 500, 201]
    assert len(outcomes) == 1201 and outcomes[0].version_id == "7"


def test_an_entry_the_mapping_rejects_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    ctx = SyncContext(source=None, fhir=_fhir(seen), store=None, options=None)  # type: ignore[arg-type]
    entries = [ChangeEntry(n, ChangeAction.CREATE, "1.2", "1.2.3", f"1.2.3.{n}", metadata={}) for n in (1, 2, 3)]

    def fake_map(study_input: StudyInput, context: SourceContext, options: Any) -> StudyOutput:
        if any(e.sequence == 2 for e in study_input.entries):
            raise MappingError("produced Patient is not valid FHIR R4", tag="00100020")
        return StudyOutput(imaging_study={"resourceType": "ImagingStudy", "id": "s"})

    monkeypatch.setattr(study, "map_study", fake_map)
    state = study.StudyState(None, {})

    result = study.sync_study(ctx, SourceContext("http://dicom", "Endpoint/e"), "1.2", None, entries, state)

    assert [(f.entry.sequence, f.failure_class) for f in result.failures] == [(2, "dicom")]
    assert result.written and len(seen) == 2  # entries 1 and 3 still reached FHIR
