"""The Endpoint search: one request for all of DICOM Cast's names, their order of preference kept."""

from __future__ import annotations

from typing import Any, cast

from dicomcast.fhir.client import FhirClient
from dicomcast.worker.lookups import wado_endpoint

WADO = {"coding": [{"code": "dicom-wado-rs"}]}


class Server:
    """A FHIR `name` search: OR over the comma-separated values, each a case-blind prefix."""

    def __init__(self, endpoints: list[dict[str, Any]]) -> None:
        self.endpoints = [{"resourceType": "Endpoint", "connectionType": WADO, **e} for e in endpoints]
        self.searches: list[str] = []

    def search(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
        self.searches.append(params["name"])
        prefixes = [p.lower() for p in params["name"].split(",")]
        return [e for e in self.endpoints if any(str(e["name"]).lower().startswith(p) for p in prefixes)]


def test_one_search_finds_the_preferred_name_among_prefix_matches() -> None:
    server = Server([{"id": "b", "name": "ep http://h/v1"}, {"id": "a", "name": "ep http://h/"}])
    found = wado_endpoint(cast(FhirClient, server), ["ep http://h/v1", "ep http://h/"])
    assert found is not None and found["id"] == "b"
    assert server.searches == ["ep http://h/v1,ep http://h/"]
    found = wado_endpoint(cast(FhirClient, server), ["ep http://h/", "ep http://h/v1"])
    assert found is not None and found["id"] == "a"  # an exact name, not the prefix match "…/v1"


def test_a_name_holding_search_syntax_is_searched_alone() -> None:
    server = Server([{"id": "c", "name": "ep http://h/a,b"}])
    found = wado_endpoint(cast(FhirClient, server), ["ep http://h/x", "ep http://h/a,b"])
    assert server.searches == ["ep http://h/x", "ep http://h/a,b"]  # not joined by a comma it holds itself
    assert found is not None and found["id"] == "c"
    assert wado_endpoint(cast(FhirClient, server), ["ep http://none/"]) is None
