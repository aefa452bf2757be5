"""(c) The server's own ceiling: the same final resources PUT directly, with the same concurrency.

The resources are those dicomcast left in FHIR (read back after its run, server-managed meta
removed). Each study is one unit of work (its Patient, then the ImagingStudy, as the worker's lanes
do); units run on `concurrency` threads over one keep-alive pool.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from benchmarks.measure import RequestCounter, Result, Stopwatch, peak_rss_mb
from dicomcast.fhir.client import FhirClient
from dicomcast.fhir.mapping.types import Resource
from dicomcast.http import make_client

KINDS = ("Endpoint", "Patient", "ImagingStudy")


def fetch_final(fhir_url: str) -> dict[str, list[Resource]]:
    """Every Endpoint, Patient and ImagingStudy the server holds, without versionId/lastUpdated."""
    found: dict[str, list[Resource]] = {}
    with httpx.Client(timeout=120) as client:
        for kind in KINDS:
            url: str | None = f"{fhir_url}/{kind}?_count=200"
            found[kind] = []
            while url:
                bundle = client.get(url).raise_for_status().json()
                found[kind] += [_without_server_meta(e["resource"]) for e in bundle.get("entry", [])]
                url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
    return found


def _without_server_meta(resource: Resource) -> Resource:
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
    body = {k: v for k, v in resource.items() if k != "meta"}
    return {**body, "meta": meta} if meta else body


def study_units(final: dict[str, list[Resource]]) -> list[list[Resource]]:
    """[Patient, ImagingStudy] per study (the Patient only with the first study that names it)."""
    patients = {f"Patient/{p['id']}": p for p in final["Patient"]}
    units = []
    for study in final["ImagingStudy"]:
        patient = patients.pop(str(study.get("subject", {}).get("reference")), None)
        units.append([patient, study] if patient else [study])
    units += [[p] for p in patients.values()]  # a Patient no study names (none expected)
    return units


def count_instances(final: dict[str, list[Resource]]) -> int:
    return sum(int(s.get("numberOfInstances", 0)) for s in final["ImagingStudy"])


def save_final(final: dict[str, list[Resource]], path: Path) -> None:
    path.write_text(json.dumps(final))


def run_ceiling(shape: str, fhir_url: str, resources: Path, concurrency: int) -> Result:
    final: dict[str, Any] = json.loads(resources.read_text())
    units = study_units(final)
    counter = RequestCounter()
    fhir = FhirClient(make_client(fhir_url, pool_size=concurrency + 2, on_request=counter))
    try:
        with Stopwatch() as watch:
            for endpoint in final["Endpoint"]:
                fhir.put(endpoint)
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                list(pool.map(lambda unit: [fhir.put(r) for r in unit], units))
    finally:
        fhir.http.close()
    return Result(
        "ceiling",
        shape,
        count_instances(final),
        watch.seconds,
        counter.requests,
        counter.bytes,
        peak_rss_mb(),
        watch.cpu_seconds,
    )
