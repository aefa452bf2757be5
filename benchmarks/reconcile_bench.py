"""`dicomcast reconcile` on a few thousand studies: the loopback Azure DICOM service (QIDO-RS) and the
real sekmet FHIR server. A bench-style run, not a test: it prints figures, asserts nothing on time.

    .venv/bin/python -m benchmarks.reconcile_bench [--studies 2000] [--instances 2] [--drift 60]

Steps: FHIR is filled (by a reconcile of an empty FHIR: every study missing; or by the real worker); `--drift` studies are then made to differ (a third lose an
instance in FHIR, a third are deleted from DICOM, a third are new in DICOM only); then a dry run, a
repair, and a second dry run (FHIR matching: the steady-state cost) are timed, each with its requests
per study on the DICOM side (QIDO-RS, WADO-RS) and the FHIR side.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from dicomcast.config import load_settings
from dicomcast.logs import configure_logging
from dicomcast.reconcile.run import RunOptions, reconcile_source
from dicomcast.worker.build import build
from tests import peers
from tests.integration.azure_worker import azure_env, sync_once
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.azure_dicom_data import generate_studies, uids


def _run(env: dict[str, str], dry_run: bool) -> dict[str, Any]:
    settings = load_settings(environ=env).settings
    parts = build(settings)
    try:
        started = time.perf_counter()
        report = reconcile_source(parts.contexts[0], RunOptions(dry_run=dry_run))
        seconds = time.perf_counter() - started
    finally:
        parts.close()
    figures = report.summary()
    return {
        "dry_run": dry_run,
        "studies_checked": report.checked,
        "differing": report.differing,
        "kinds": figures["kinds"],
        "written": report.studies_written,
        "seconds": round(seconds, 1),
        "studies_per_second": round(report.checked / seconds, 1),
        "dicom_requests_per_study": figures["dicom_requests_per_study"],
        "fhir_requests_per_study": figures["fhir_requests_per_study"],
    }


def _drop_instance(fhir_url: str, study_uid: str) -> None:
    bundle = httpx.get(f"{fhir_url}/ImagingStudy", params={"identifier": f"urn:dicom:uid|urn:oid:{study_uid}"}).json()
    study = copy.deepcopy(bundle["entry"][0]["resource"])
    study["series"][0]["instance"].pop()
    study["series"] = [s for s in study["series"] if s["instance"]]
    study["meta"] = {"source": study["meta"]["source"]}
    httpx.put(f"{fhir_url}/ImagingStudy/{study['id']}", json=study, timeout=30).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--drift", type=int, default=60)
    parser.add_argument("--fill", choices=("reconcile", "worker"), default="reconcile", help="what fills FHIR first")
    args = parser.parse_args()
    configure_logging(os.environ.get("BENCH_LOG_LEVEL", "ERROR"), "json")
    fhir = peers.start_fhir()
    work = Path(tempfile.mkdtemp(prefix="reconcile-bench-"))
    with AzureDicomServer() as azure:
        try:
            instances = generate_studies(args.studies, args.instances, seed=7)
            azure.store_all(instances)
            env = azure_env(f"{azure.url}/v2", fhir.url, work / "s.db", DicomCastWorker__MaxConcurrentStudies="8")
            if args.fill == "worker":
                started = time.perf_counter()
                assert sync_once(env).ok
                fill: dict[str, Any] = {"worker_sync_seconds": round(time.perf_counter() - started, 1)}
            else:
                fill = _run(env, dry_run=False)  # every study missing: reconcile writes them all
            print(json.dumps({"fill": fill}), file=sys.stderr)
            study_uids = list(dict.fromkeys(uids(i)[0] for i in instances))
            third = args.drift // 3
            for uid in study_uids[:third]:
                _drop_instance(fhir.url, uid)
            for uid in study_uids[third : 2 * third]:
                azure.delete_study(uid)
            azure.store_all(generate_studies(third, args.instances, seed=8))
            results = []
            for dry_run in (True, False, True):
                results.append(_run(env, dry_run=dry_run))
                print(json.dumps(results[-1]), file=sys.stderr)
        finally:
            fhir.stop()
    print(json.dumps({"studies": args.studies, "instances_per_study": args.instances,
                      "fill": fill, "runs": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
