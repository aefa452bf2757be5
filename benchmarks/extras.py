"""Runs outside the table: what FHIR holds afterwards, a large study against FHIR limits, the
100k-instance backlog's memory."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.ceiling import count_instances, fetch_final
from benchmarks.feed import Shape, serve_feed
from benchmarks.procs import fhir_server, run_variant, stub_fhir
from benchmarks.report import Extra
from dicomcast.fhir.mapping.types import Resource

MAX_BUNDLE_ENTRIES = 500  # Azure Health Data Services FHIR service: "each bundle is limited to 500 items"
RSS_TARGET_MB = 200
BACKLOG_INSTANCES_PER_STUDY = 100


def verify(final: dict[str, list[Resource]], shape: Shape) -> list[str]:
    """What is wrong with FHIR's content after syncing `shape` (nothing, normally)."""
    problems = []
    if len(final["ImagingStudy"]) != shape.studies:
        problems.append(f"{len(final['ImagingStudy'])} ImagingStudies, expected {shape.studies}")
    if count_instances(final) != shape.total:
        problems.append(f"{count_instances(final)} instances in ImagingStudies, expected {shape.total}")
    if len(final["Patient"]) != shape.studies:  # the generator gives each study its own patient
        problems.append(f"{len(final['Patient'])} Patients, expected {shape.studies}")
    if len(final["Endpoint"]) != 1:
        problems.append(f"{len(final['Endpoint'])} Endpoints, expected 1")
    return problems


def compact_size(resource: Resource) -> int:
    return len(json.dumps(resource, separators=(",", ":"), ensure_ascii=False).encode())


def large_study_extra(shape: Shape, args: argparse.Namespace, out_dir: Path) -> Extra:
    """One study of N instances through dicomcast into sekmet: does it land, how big does it get."""
    with serve_feed(shape, args.seed) as feed, fhir_server() as fhir:
        work = ["--workdir", str(Path(tempfile.mkdtemp(dir=out_dir)))]
        options = ["--dicom", feed.url, "--fhir", fhir.url, *work, "--concurrency", str(args.concurrency)]
        result = run_variant("dicomcast", shape, out_dir, *options, label="large-study")
        final = fetch_final(fhir.url)
    problems = verify(final, shape)
    study = final["ImagingStudy"][0] if final["ImagingStudy"] else {}
    size = compact_size(study)
    patient = compact_size(final["Patient"][0]) if final["Patient"] else 0
    writes = result.fhir_requests
    lines = [
        f"{shape.name}: {'all ' + str(shape.total) + ' instances landed' if not problems else '; '.join(problems)}"
        f" in {result.seconds:.1f} s ({result.per_second:,.0f} inst/s), peak RSS {result.peak_rss_mb:.0f} MB",
        f"final ImagingStudy: {size:,} bytes ({size / 1024 / 1024:.2f} MiB) compact JSON, "
        f"{size / max(1, shape.total):.0f} bytes per instance; largest transaction ~{size + patient:,} bytes",
        f"transaction entries per write: 2 (Patient + ImagingStudy; limit {MAX_BUNDLE_ENTRIES}); "
        f"{writes} FHIR requests, {result.fhir_bytes / 1024 / 1024:.1f} MiB sent "
        f"({result.bytes_per_instance:,.0f} bytes/instance: the study is rewritten once per feed page)",
    ]
    return Extra(f"large study ({shape.name}):", lines)


def backlog_extra(instances: int, args: argparse.Namespace, out_dir: Path) -> Extra:
    """A backlog of `instances` (studies of 100) synced in one run: peak RSS of the worker process."""
    per_study = min(BACKLOG_INSTANCES_PER_STUDY, instances)
    shape = Shape(max(1, instances // per_study), per_study)
    what = " with a CT image's metadata each" if args.backlog_metadata == "ct" else ""
    print(f"[backlog {shape.name}] serving {shape.total} instances{what} ...", flush=True)
    with serve_feed(shape, args.seed, args.backlog_metadata) as feed:
        base = ["--dicom", feed.url, "--workdir", str(Path(tempfile.mkdtemp(dir=out_dir)))]
        base += ["--concurrency", str(args.concurrency)]
        if args.backlog_fhir == "stub":
            with stub_fhir(set()) as url:
                result = run_variant("dicomcast", shape, out_dir, *base, "--fhir", url, label="backlog")
        else:
            with fhir_server() as fhir:
                result = run_variant("dicomcast", shape, out_dir, *base, "--fhir", fhir.url, label="backlog")
    met = result.peak_rss_mb <= RSS_TARGET_MB and result.instances == shape.total
    lines = [
        f"{shape.name} ({result.instances:,} instances{what}) into {args.backlog_fhir}: {result.seconds:.0f} s, "
        f"{result.per_second:,.0f} inst/s, peak RSS {result.peak_rss_mb:.0f} MB",
    ]
    target = (f"peak RSS <= {RSS_TARGET_MB} MB on a {shape.total:,}-instance backlog: {result.peak_rss_mb:.0f} MB", met)
    return Extra(f"backlog ({shape.total:,} instances):", lines, target)
