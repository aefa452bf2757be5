"""What must never leave or be kept, proved on real peers behind a proxy (tests/servers/hostile_proxy.py):
- credentials: a FHIR server whose `next` links name other hosts, ports and schemes;
- PHI: a FHIR server that echoes patient names and ids in OperationOutcome diagnostics;
- secrets in URLs: an endpoint with `user:pw@` and `?sig=`.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from dicomcast.store import Store, make_engine
from tests import peers
from tests.integration import bulk_data
from tests.integration.azure_worker import azure_env, sync_once
from tests.integration.sync_helpers import dicomcast, orthanc_env, snapshot, start_dicomcast, versions
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.azure_dicom_data import generate_studies
from tests.servers.hostile_proxy import HostileProxy, Recorder

pytestmark = pytest.mark.integration
FHIR_USER, FHIR_PASSWORD = "dicomcast-fhir", "fhir-basic-password"


def _basic_fhir(**extra: str) -> dict[str, str]:
    return {
        "Fhir__Authentication__Enabled": "true",
        "Fhir__Authentication__AuthenticationType": "Basic",
        "Fhir__Authentication__BasicCredential__Username": FHIR_USER,
        "Fhir__Authentication__BasicCredential__Password": FHIR_PASSWORD,
        **extra,
    }


# ---- credentials stay with their origin --------------------------------------------------------


@pytest.mark.timeout(600)
def test_next_links_to_other_origins_get_no_credentials(fhir_server: peers.Peer, tmp_path: Path) -> None:
    sekmet_origin = fhir_server.url.removesuffix("/fhir")
    with Recorder("127.0.0.2") as other_host, Recorder("127.0.0.1") as other_port:
        rewritten: list[str] = []

        def elsewhere(method: str, path: str, response: httpx.Response) -> bytes:
            """Every `next` link names another origin, in turn: host, port, scheme."""
            if method != "GET" or "json" not in response.headers.get("Content-Type", ""):
                return response.content
            body = response.json()
            for link in body.get("link", []) if isinstance(body, dict) else []:
                if link.get("relation") == "next":
                    target = (other_host.url, other_port.url, proxy.url.replace("http://", "https://"))
                    link["url"] = link["url"].replace(sekmet_origin, target[len(rewritten) % 3])
                    rewritten.append(link["url"])
            return json.dumps(body).encode()

        proxy = HostileProxy(
            sekmet_origin, rewrite=elsewhere, rewrite_path=lambda p: p.replace("_count=200", "_count=2")
        )
        proxy.start()
        try:
            with AzureDicomServer() as azure:
                azure.store_all(generate_studies(12, 2, seed=5))
                env = azure_env(f"{azure.url}/v2", f"{proxy.url}/fhir", tmp_path / "s.db", **_basic_fhir())
                assert sync_once(env).ok  # the first sync: searches find nothing, so no next links
                before = snapshot(fhir_server)
                engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
                Store(engine).set_checkpoint(f"azure:{azure.url}/v2", None)  # replay: searches now page
                engine.dispose()
                report = sync_once(env)
            after = snapshot(fhir_server)
        finally:
            proxy.stop()
        followed = [path for method, path, _ in proxy.seen if method == "GET" and "_offset=" in path]
        credentialed = [h for _, _, h in proxy.seen if "Authorization" in h]
        print(
            f"\nNEXT-LINK FIGURES: next links rewritten={len(rewritten)} (other host / other port / https) "
            f"followed on Fhir:Endpoint={len(followed)} requests at other origins={len(other_host.requests)}+"
            f"{len(other_port.requests)} with credentials={other_host.with_credentials + other_port.with_credentials}"
        )
        assert report.ok and report.caught_up
        assert len(rewritten) >= 6 and len(followed) >= len(rewritten)  # every link was followed, on our origin
        assert other_host.requests == [] and other_port.requests == []
        assert len(credentialed) == len(proxy.seen)  # the requests that did go out carried the credentials
        assert versions(after) == versions(before)  # the replay found every page: nothing rewritten


# ---- no PHI from a server's error text --------------------------------------------------------


def _phi_outcome(texts: list[str]) -> bytes:
    said = " / ".join(texts)
    return json.dumps(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "processing",
                    "diagnostics": f"Rejected patient {said}",
                    "details": {"text": f"Patient {said} is not allowed"},
                    "expression": ["Patient.name", f"Patient.identifier.where(value='{texts[-1]}')"],
                    "location": [said],
                }
            ],
        }
    ).encode()


def _patients_in(bundle: dict[str, Any]) -> list[str]:
    """Name parts and identifier values of the Patients a transaction writes: what a server echoes."""
    found = []
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "Patient":
            for name in resource.get("name", []):
                found += [name.get("family", ""), *name.get("given", [])]
            found += [i.get("value", "") for i in resource.get("identifier", [])]
    return [f for f in found if f]


def _get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10)


@pytest.mark.timeout(900)
def test_phi_in_diagnostics_reaches_no_log_row_output_or_probe(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    bulk = bulk_data.make_bulk("phi", 4, 3)
    bulk_data.upload(orthanc, bulk.instances)
    poison, poison_patient = bulk.instances[0].study_uid, bulk.instances[0].patient_id
    echoed: set[str] = set()
    state = {"searches_failing": True, "searches_failed": 0, "writes_rejected": 0}

    def echo(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes] | None:
        fhir_json = {"Content-Type": "application/fhir+json"}
        if method == "GET" and path.startswith("/fhir/Patient?") and state["searches_failing"]:
            ids = re.findall(r"%7C([^,&%]+)", path)  # the patient ids searched for
            echoed.update(ids)
            state["searches_failed"] += 1
            return 500, fhir_json, _phi_outcome(ids or ["?"])
        if method == "POST" and poison.encode() in body:
            # The study's Patient is in the body unless the study sharing it wrote it first: echo
            # the PatientID then (the order depends on the machine's speed).
            names = _patients_in(json.loads(body)) or [poison_patient]
            echoed.update(names)
            state["writes_rejected"] += 1
            return 422, fhir_json, _phi_outcome(names)
        return None

    proxy = HostileProxy(fhir_server.url.removesuffix("/fhir"), answer=echo).start()
    port = peers.free_port()
    store = tmp_path / "store.db"
    env = orthanc_env(
        orthanc,
        peers.Peer(fhir_server.process, fhir_server.workdir, f"{proxy.url}/fhir", fhir_server.log),
        store,
        DicomCastWorker__HttpPort=str(port),
        RetryConfiguration__MaxAttempts="2",
        RetryConfiguration__TotalRetryDuration="5s",
    )
    log = tmp_path / "run.log"
    process = start_dicomcast(["run"], env, log)
    probes: list[str] = []
    try:
        readyz = f"http://127.0.0.1:{port}/readyz"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # wait for the failed cycle to show on /readyz
            try:
                answer = _get(readyz)
                probes.append(answer.text)
                if answer.status_code == 503 and "last cycle failed" in answer.text:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert any("last cycle failed" in p for p in probes), probes[-3:]
        state["searches_failing"] = False  # heal: the next cycles sync everything but the poison study
        wanted = {i.sop_instance_uid for i in bulk.instances if i.study_uid != poison}
        while time.monotonic() < deadline:
            listed = {u for s in snapshot(fhir_server)["ImagingStudy"].values() for u in bulk_data.instances_in(s)}
            if wanted <= listed and _get(readyz).status_code == 200:
                break
            time.sleep(1)
        probes.append(_get(readyz).text)
        probes.append(_get(f"http://127.0.0.1:{port}/metrics").text)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        proxy.stop()

    engine = make_engine(f"sqlite:///{store}")
    rows = Store(engine).failures()
    engine.dispose()
    listing = dicomcast(["failures", "list"], env)
    shown = [dicomcast(["failures", "show", str(row.id)], env) for row in rows]
    outputs = {
        "log": log.read_text(),
        "store": "\n".join(f"{r.source} {r.message}" for r in rows),
        "failures list": listing.stdout + listing.stderr,
        "failures show": "\n".join(s.stdout + s.stderr for s in shown),
        "readyz/metrics": "\n".join(probes),
    }
    leaks = {where: sorted(t for t in echoed if t in text) for where, text in outputs.items()}
    print(
        f"\nPHI FIGURES: echoed_values={len(echoed)} rejected_writes={state['writes_rejected']} "
        f"failed_searches={state['searches_failed']} failure_rows={len(rows)} "
        f"leaks={ {k: len(v) for k, v in leaks.items()} }"
    )
    assert echoed and state["writes_rejected"] > 0 and state["searches_failed"] > 0
    assert all(not found for found in leaks.values()), leaks
    poison_rows = [r for r in rows if r.study_uid == poison]
    assert len(poison_rows) == 3 and all(r.failure_class == "fhir" for r in poison_rows)
    assert all("error processing at Patient.identifier, Patient.name" in r.message for r in poison_rows), rows[
        0
    ].message
    assert "HTTP 500" in "\n".join(probes)  # /readyz said why, without the text


# ---- no secrets from an endpoint URL ------------------------------------------------------------


@pytest.mark.timeout(600)
def test_credentials_in_the_endpoint_url_reach_no_output(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    bulk = bulk_data.make_bulk("cred", 2, 2)
    bulk_data.upload(orthanc, bulk.instances)
    user, password = orthanc.extra["username"], orthanc.extra["password"]
    sig = "SAS-SIGNATURE-VALUE"
    endpoint = orthanc.url.replace("http://", f"http://{user}:{password}@") + f"?sig={sig}"
    store = tmp_path / "store.db"
    env = orthanc_env(
        orthanc, fhir_server, store, DicomWeb__Endpoint=endpoint, DicomWeb__Authentication__Enabled="false"
    )
    port = peers.free_port()
    log = tmp_path / "run.log"
    process = start_dicomcast(["run"], {**env, "DicomCastWorker__HttpPort": str(port)}, log)
    probes = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if (
                    _get(f"http://127.0.0.1:{port}/readyz").status_code == 200
                    and len(snapshot(fhir_server)["ImagingStudy"]) == 2
                ):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        probes = [_get(f"http://127.0.0.1:{port}/{p}").text for p in ("readyz", "healthz", "metrics")]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    engine = make_engine(f"sqlite:///{store}")
    rows = Store(engine)
    keys = [c.source for c in rows.checkpoints()] + [f.source for f in rows.failures()]
    with engine.connect() as connection:
        keys += [str(row[0]) for row in connection.execute(text("SELECT source FROM leases"))]
    engine.dispose()
    snap = snapshot(fhir_server)
    outputs = {
        "log": log.read_text(),
        "store keys": " ".join(keys),
        "probes and metrics labels": "\n".join(probes),
        "fhir": json.dumps(snap),
        "status": dicomcast(["status"], env).stdout,
        "check": "".join(dicomcast(["check"], env).__dict__[k] or "" for k in ("stdout", "stderr")),
        "checkpoint show": dicomcast(["checkpoint", "show"], env).stdout,
    }
    leaks = {where: [s for s in (password, sig, f"{user}:") if s in text] for where, text in outputs.items()}
    print(f"\nURL-REDACTION FIGURES: outputs checked={len(outputs)} leaks={ {k: len(v) for k, v in leaks.items()} }")
    assert bulk_data.exact(snap, bulk) == []  # user info still works as Basic credentials
    assert keys and all(k.endswith(f"orthanc:{orthanc.url}?sig=***") for k in keys), keys
    assert all(not found for found in leaks.values()), leaks
    endpoint_resource = next(iter(snap["Endpoint"].values()))
    assert endpoint_resource["address"] == f"{orthanc.url}/dicom-web?sig=***"
