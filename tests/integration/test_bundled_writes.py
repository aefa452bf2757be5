"""Studies of a batch share FHIR transactions (worker/bundles.py), against the real sekmet server:
one-instance studies cost a few requests per batch, not one each; a study that meets a real 412
(changed by someone else meanwhile) or that the server refuses is split out, and the others land."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dicomcast.worker import metrics
from tests import peers
from tests.integration.azure_worker import azure_env, sync_once
from tests.integration.sync_helpers import snapshot, versions
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.azure_dicom_data import dicom_json, generate_studies, uids
from tests.servers.faulty_proxy import FaultyProxy, Rewrite, Rule, outcome

pytestmark = pytest.mark.integration


@pytest.fixture
def azure() -> Iterator[AzureDicomServer]:
    with AzureDicomServer() as server:
        yield server


@pytest.fixture
def proxy(fhir_server: peers.Peer) -> Iterator[FaultyProxy]:
    """A counting pass-through in front of sekmet (no faults unless a test adds a rule)."""
    proxy = FaultyProxy(fhir_server.url.removesuffix("/fhir"), rate=0.0).start()
    yield proxy
    proxy.stop()


def _landed(snap: dict[str, Any]) -> dict[str, int]:
    """Study UID -> numberOfInstances of every ImagingStudy in FHIR."""
    out = {}
    for study in snap["ImagingStudy"].values():
        uid = next(i["value"] for i in study["identifier"] if i["system"] == "urn:dicom:uid")
        out[uid.removeprefix("urn:oid:")] = study["numberOfInstances"]
    return out


def _transaction(method: str, body: bytes) -> bool:
    return method == "POST" and b'"type":"transaction"' in body


def _conflicts() -> float:
    return sum(
        s.value
        for family in metrics.REGISTRY.collect()
        if family.name == "dicomcast_fhir_requests"
        for s in family.samples
        if s.name == "dicomcast_fhir_requests_total" and s.labels.get("status") == "412"
    )


def test_one_instance_studies_share_transactions(
    azure: AzureDicomServer, fhir_server: peers.Peer, proxy: FaultyProxy, tmp_path: Path
) -> None:
    instances = generate_studies(600, 1, seed=31)
    azure.store_all(instances)
    env = azure_env(f"{azure.url}/v2", f"{proxy.url}/fhir", tmp_path / "s.db")

    assert sync_once(env).ok

    snap = snapshot(fhir_server)
    assert _landed(snap) == {uids(i)[0]: 1 for i in instances}
    assert len(snap["Patient"]) == 600
    assert proxy.counts["requests"] / len(instances) <= 0.05  # 1,200 entries: 3 transactions; 6 searches
    before, requests = versions(snap), proxy.counts["requests"]
    assert sync_once(env).ok  # nothing new: nothing written
    assert versions(snapshot(fhir_server)) == before
    assert proxy.counts["requests"] - requests <= 3  # the capability check and the Endpoint read


def test_a_conflicting_and_a_refused_study_leave_the_others_of_their_bundle_landed(
    azure: AzureDicomServer, fhir_server: peers.Peer, proxy: FaultyProxy, tmp_path: Path
) -> None:
    grown = [{**i, **dicom_json(PatientID="GROWN")} for i in generate_studies(1, 3, seed=32)]
    refused, *others = generate_studies(41, 1, seed=33)  # one instance each, a Patient each
    azure.store_all(grown[:2])
    env = azure_env(f"{azure.url}/v2", f"{proxy.url}/fhir", tmp_path / "s.db")
    assert sync_once(env).ok
    grown_uid, refused_uid = uids(grown[0])[0], uids(refused)[0]
    [grown_id] = [s["id"] for s in snapshot(fhir_server)["ImagingStudy"].values()]

    def changed_by_someone_else(method: str, path: str, body: bytes) -> bool:
        """The first transaction finds the grown study changed since dicomcast read it: a real 412."""
        if _transaction(method, body) and grown_uid.encode() in body and not proxy.counts["touched"]:
            proxy.counts["touched"] += 1
            study = httpx.get(f"{fhir_server.url}/ImagingStudy/{grown_id}").raise_for_status().json()
            httpx.put(f"{fhir_server.url}/ImagingStudy/{grown_id}", json=study).raise_for_status()
        return False

    proxy.rules += [
        Rule(changed_by_someone_else, 0, {}),
        Rule(lambda m, p, b: _transaction(m, b) and refused_uid.encode() in b, 422, outcome("rejected by a profile")),
    ]
    azure.store_all([grown[2], refused, *others])
    conflicts = _conflicts()

    report = sync_once(env)

    assert report.ok and report.failures == 1  # the refused study's one entry
    assert _conflicts() > conflicts  # sekmet did answer 412
    landed = _landed(snapshot(fhir_server))
    assert landed == {grown_uid: 3, **{uids(i)[0]: 1 for i in others}}


def _search_of(resource_type: str) -> Callable[[str, str], bool]:
    def matches(method: str, path: str) -> bool:
        where = path.split("?", 1)[0].removesuffix("/_search")
        return where.endswith(f"/fhir/{resource_type}") and method in ("GET", "POST")

    return matches


def test_the_next_batch_looked_up_before_this_batchs_write_lands_continues_what_it_wrote(
    azure: AzureDicomServer, fhir_server: peers.Peer, proxy: FaultyProxy, tmp_path: Path
) -> None:
    """Batch 2 (read ahead) is searched while batch 1's transaction is held at the proxy: sekmet answers
    its searches without the study and the Patient batch 1 creates. Batch 2 must continue them as
    batch 1 wrote them (If-Match on its version), not create them again over batch 1's instances."""
    spanning = [{**i, **dicom_json(PatientID="SHARED")} for i in generate_studies(1, 3, seed=34)]
    patient = {tag: spanning[0][tag] for tag in ("00100010", "00100030", "00100040") if tag in spanning[0]}
    second = [{**i, **dicom_json(PatientID="SHARED"), **patient} for i in generate_studies(1, 1, seed=35)]
    azure.store_all([*spanning, *second])
    answered: Counter[str] = Counter()
    looked_up, held = threading.Event(), []

    def noted(kind: str) -> Callable[[bytes], bytes]:
        def body(content: bytes) -> bytes:  # runs once sekmet has answered, before the worker sees it
            answered[kind] += 1
            if answered["ImagingStudy"] >= 2 and answered["Patient"] >= 2:  # batch 1's searches, then batch 2's
                looked_up.set()
            return content

        return body

    def hold_the_first_transaction(method: str, path: str, body: bytes) -> bool:
        if _transaction(method, body) and not held:
            held.append(looked_up.wait(60))
        return False

    proxy.rewrites += [Rewrite(_search_of(k), noted(k)) for k in ("ImagingStudy", "Patient")]
    proxy.rules.append(Rule(hold_the_first_transaction, 0, {}))
    env = azure_env(
        f"{azure.url}/v2",
        f"{proxy.url}/fhir",
        tmp_path / "s.db",
        DicomCastWorker__BatchSize="2",
        DicomCastWorker__MaxBatchEntries="2",
    )

    report = sync_once(env)

    assert report.ok and report.entries == 4 and held == [True]
    snap = snapshot(fhir_server)
    assert _landed(snap) == {uids(spanning[0])[0]: 3, uids(second[0])[0]: 1}
    assert len(snap["Patient"]) == 1
