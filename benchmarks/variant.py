"""One benchmark variant in a process of its own, so its peak RSS and CPU time are its own.

    python -m benchmarks.variant dicomcast --shape 200x50 --dicom ROOT --fhir URL --workdir DIR --out R.json
    python -m benchmarks.variant baseline  --shape 200x50 --dicom ROOT --fhir URL --out R.json
    python -m benchmarks.variant ceiling   --shape 200x50 --fhir URL --resources F.json --concurrency 8 --out R.json

`--cpu N` pins the process to one core first (the worker-alone variant). `ROOT` is the DICOM
service URL without API version.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from benchmarks.measure import Result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.variant")
    parser.add_argument("variant", choices=("dicomcast", "baseline", "ceiling"))
    parser.add_argument("--label", help="the variant's name in the report (default: the variant)")
    parser.add_argument("--shape", required=True)
    parser.add_argument("--dicom", help="DICOM service root, without API version")
    parser.add_argument("--fhir", required=True)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--resources", type=Path, help="ceiling: the final resources (JSON)")
    parser.add_argument("--concurrency", type=int, help="MaxConcurrentStudies (default: dicomcast's)")
    parser.add_argument(
        "--experiment", choices=("prefetch", "batch", "batch+prefetch"), help="dicomcast: a source decorator"
    )
    parser.add_argument("--cpu", type=int, help="pin this process to one core")
    parser.add_argument("--limit", type=int, default=0, help="baseline: only the feed's first N instances")
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> Result:
    if args.variant == "dicomcast":
        from benchmarks.worker_run import WorkerJob, run_worker

        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dicomcast-bench-"))
        job = WorkerJob(
            args.label or "dicomcast",
            args.shape,
            f"{args.dicom}/v2",
            args.fhir,
            workdir,
            args.concurrency,
            args.experiment,
        )
        return run_worker(job)
    if args.variant == "baseline":
        from benchmarks.baseline import run_baseline

        return run_baseline(args.shape, args.dicom, args.fhir, args.limit)
    from benchmarks.ceiling import run_ceiling

    return run_ceiling(args.shape, args.fhir, args.resources, args.concurrency or 8)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    result = run(args)
    if args.label:
        result.variant = args.label
    result.save(args.out)


if __name__ == "__main__":
    main()
