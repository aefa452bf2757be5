"""(a) dicomcast as configured: the real worker (`build` from settings, `run_once`) in this process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.experiments import decorate
from benchmarks.measure import Result, Stopwatch, peak_rss_mb
from dicomcast.config import load_settings
from dicomcast.logs import configure_logging
from dicomcast.worker import metrics
from dicomcast.worker.build import build, tune_collector
from dicomcast.worker.runner import make_workers, run_once
from dicomcast.worker.state import WorkerState


@dataclass(frozen=True)
class WorkerJob:
    variant: str
    shape: str
    dicom_url: str  # DicomWeb:Endpoint, with API version
    fhir_url: str
    workdir: Path
    max_concurrent_studies: int | None = None  # None: dicomcast's default
    experiment: str | None = None  # benchmarks/experiments.py: a source decorator, not dicomcast as configured


def worker_environment(job: WorkerJob) -> dict[str, str]:
    env = {
        "DicomWeb__Endpoint": job.dicom_url,
        "Fhir__Endpoint": job.fhir_url,
        "Store__ConnectionString": f"sqlite:///{job.workdir / 'store.db'}",
        "Logging__Format": "json",
    }
    if job.max_concurrent_studies is not None:
        env["DicomCastWorker__MaxConcurrentStudies"] = str(job.max_concurrent_studies)
    # Other worker settings pass through from the environment, for experiments (not in the report's header).
    env.update({k: v for k, v in os.environ.items() if k.startswith("DicomCastWorker__") and k not in env})
    return env


def counter_total(name: str) -> float:
    """The sum of a worker counter over all its labels."""
    return sum(
        sample.value
        for family in metrics.REGISTRY.collect()
        if family.name == name
        for sample in family.samples
        if sample.name == f"{name}_total"
    )


def run_worker(job: WorkerJob) -> Result:
    settings = load_settings(environ=worker_environment(job)).settings
    configure_logging(settings.logging.level, settings.logging.format)
    parts = build(settings)
    tune_collector()  # as `dicomcast run` does
    if job.experiment:
        for ctx in parts.contexts:
            ctx.source = decorate(ctx.source, job.experiment)
    try:
        workers = make_workers(parts.contexts, WorkerState(), settings.worker.lease_duration)
        requests_before = counter_total("dicomcast_fhir_requests")
        bytes_before = counter_total("dicomcast_fhir_request_bytes")
        with Stopwatch() as watch:
            reports = run_once(workers)
    finally:
        parts.close()
    failed = [r.error for r in reports if not r.ok]
    if failed:
        raise RuntimeError(f"dicomcast run failed: {failed}")
    return Result(
        variant=job.variant,
        shape=job.shape,
        instances=sum(r.entries for r in reports),
        seconds=watch.seconds,
        cpu_seconds=watch.cpu_seconds,
        fhir_requests=int(counter_total("dicomcast_fhir_requests") - requests_before),
        fhir_bytes=int(counter_total("dicomcast_fhir_request_bytes") - bytes_before),
        peak_rss_mb=peak_rss_mb(),
    )
