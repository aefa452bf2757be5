"""Patient lookup: hits on Other Patient IDs are dropped, duplicates resolve the same way every time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from dicomcast.fhir.client import FhirClient
from dicomcast.fhir.mapping import PatientKey, resource_id
from dicomcast.worker.lookups import patients_by_key

KEY = PatientKey(None, "PAT-1")


class Server:
    """Answers a token search like a FHIR server: any identifier with that system and value."""

    def __init__(self, patients: list[dict[str, Any]]) -> None:
        self.patients = patients

    def search_by_identifiers(self, resource_type: str, tokens: Iterable[str]) -> list[dict[str, Any]]:
        wanted = {tuple(t.split("|", 1)) for t in tokens}
        return [p for p in self.patients if any((i.get("system", ""), i["value"]) in wanted for i in p["identifier"])]


def lookup(patients: list[dict[str, Any]]) -> dict[PatientKey, dict[str, Any]]:
    return patients_by_key(cast(FhirClient, Server(patients)), [KEY])


def test_a_hit_on_an_other_patient_id_is_no_match() -> None:
    other = {"id": "x", "identifier": [{"value": "PAT-9"}, {"use": "secondary", "value": "PAT-1"}]}
    assert lookup([other]) == {}


def test_dicom_cast_empty_system_matches_a_key_without_system() -> None:
    legacy = {"id": "server-1", "identifier": [{"system": "", "value": "PAT-1"}]}
    assert lookup([legacy])[KEY]["id"] == "server-1"


def test_duplicates_resolve_to_our_id_else_the_smallest_in_any_order() -> None:
    ours = {"id": resource_id("Patient", "", "PAT-1"), "identifier": [{"value": "PAT-1"}]}
    b = {"id": "b", "identifier": [{"value": "PAT-1"}]}
    a = {"id": "a", "identifier": [{"value": "PAT-1"}]}
    assert lookup([b, ours, a])[KEY] is ours and lookup([ours, a, b])[KEY] is ours
    assert lookup([b, a])[KEY] is a and lookup([a, b])[KEY] is a
