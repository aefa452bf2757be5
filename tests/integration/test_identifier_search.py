"""Identifier token searches on the real FHIR server: a PatientID holding a search character
(`|`, `,`, `$`, `\\`) is searched as itself, with and without an issuer system, and finds exactly its
own Patient (an unescaped `,` splits the token and finds other people)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dicomcast.fhir.client import FhirClient
from dicomcast.fhir.mapping import PatientKey
from tests import peers

pytestmark = pytest.mark.integration
VALUES = ("A|B", "A,B", "A$B", "A\\B", "A", "B")


@pytest.fixture(scope="module")
def fhir() -> Iterator[FhirClient]:
    server = peers.start_fhir()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield FhirClient(client)
    finally:
        server.stop()


def test_each_patient_id_finds_exactly_its_own_patient(fhir: FhirClient) -> None:
    keys = [PatientKey(system, value) for system in ("urn:test:issuer", None) for value in VALUES]
    for n, key in enumerate(keys):
        identifier = {"value": key.value} | ({"system": key.system} if key.system else {})
        fhir.put({"resourceType": "Patient", "id": f"p{n}", "identifier": [identifier]})
    for n, key in enumerate(keys):
        found = [p["id"] for p in fhir.search_by_identifiers("Patient", [key.search_token()])]
        assert found == [f"p{n}"], key  # `|value` (no system) matches only identifiers without one
    every = fhir.search_by_identifiers("Patient", [k.search_token() for k in keys])
    assert sorted(p["id"] for p in every) == sorted(f"p{n}" for n in range(len(keys)))
