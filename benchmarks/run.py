"""The throughput benchmark (issues 7, 14): one command, one table.

For each feed shape it serves the feed from the Azure DICOM test server and syncs it, each time into
a fresh sekmet FHIR server, with (a) dicomcast as configured, (b) the DICOM Cast-style baseline,
(c) the ceiling (the same final resources PUT directly), and (d) dicomcast against an instant stub
on one core. Every variant runs in its own process (peak RSS and CPU time are its own). (a), (b)
and (c) reach the FHIR server through a loopback proxy adding a round-trip time (`--rtt`, 20 ms:
a cloud FHIR service, as users meet it; `--rtt 0` for the server itself).

    .venv/bin/python -m benchmarks.run                       # 1x1000, 200x50, 2000x1, mixed:40
    .venv/bin/python -m benchmarks.run --scale 0.1           # a quick run
    .venv/bin/python -m benchmarks.run --backlog 100000      # plus the 100k-instance memory run
    .venv/bin/python -m benchmarks.run --shapes '' --backlog 20000 --backlog-metadata ct   # real metadata sizes
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from benchmarks.ceiling import fetch_final, save_final
from benchmarks.extras import backlog_extra, large_study_extra, verify
from benchmarks.feed import DEFAULT_SHAPES, Shape, parse_shapes, serve_feed
from benchmarks.measure import Result
from benchmarks.procs import cores, fhir_server, pin_this_process, run_variant, stub_fhir, with_rtt
from benchmarks.profile import PROJECT_CODE, summarize
from benchmarks.report import Extra, ShapeReport, render
from dicomcast.config.settings import Settings

EXPERIMENTS = ("prefetch", "batch+prefetch")


def bench_shape(shape: Shape, args: argparse.Namespace, out_dir: Path) -> ShapeReport:
    report = ShapeReport(shape.name, shape.target_name)
    concurrency = ["--concurrency", str(args.concurrency)]
    print(f"[{shape.name}] serving {shape.total} instances ...", file=sys.stderr, flush=True)
    runs: dict[str, list[Result]] = {}
    with serve_feed(shape, args.seed) as feed:
        dicom = ["--dicom", feed.url]
        resources = out_dir / f"{shape.name}-final.json"
        for n in range(args.repeat):  # the variants in turn, so a drift in the machine's speed meets each
            for name, result in _round(shape, args, out_dir, dicom, concurrency, resources, n, report).items():
                runs.setdefault(name, []).append(result)
        if not args.skip_baseline:
            report.results["baseline"] = _baseline(shape, args, out_dir, dicom, report)
        if args.experiments:
            run_experiments(report, shape, out_dir, dicom, concurrency)
    for name, results in runs.items():
        report.results[name] = median_run(results)
        report.runs[name] = [r.seconds for r in results]
    print(f"[{shape.name}] done", file=sys.stderr, flush=True)
    return report


def _round(
    shape: Shape,
    args: argparse.Namespace,
    out_dir: Path,
    dicom: list[str],
    concurrency: list[str],
    resources: Path,
    n: int,
    report: ShapeReport,
) -> dict[str, Result]:
    """dicomcast, the ceiling and the worker alone, once each; the first round's final resources are
    what every ceiling writes. Variant logs of later rounds are named `<variant>.<n>`."""
    suffix = f".{n + 1}" if n else ""
    profile = args.profile and not n
    results: dict[str, Result] = {}
    with fhir_server() as fhir, with_rtt(fhir.url, args.rtt) as url:
        work = ["--workdir", str(Path(tempfile.mkdtemp(dir=out_dir)))]
        options = [*dicom, "--fhir", url, *work, *concurrency]
        results["dicomcast"] = run_variant(
            "dicomcast", shape, out_dir, *options, label=f"dicomcast{suffix}", profile=profile
        )
        final = fetch_final(fhir.url)
        report.problems += [f"dicomcast{suffix}: {p}" for p in verify(final, shape)]
    if not n:
        save_final(final, resources)
    with fhir_server() as fhir, with_rtt(fhir.url, args.rtt) as url:
        options = ["--fhir", url, "--resources", str(resources), *concurrency]
        results["ceiling"] = run_variant("ceiling", shape, out_dir, *options, label=f"ceiling{suffix}")
    results["worker-alone"] = worker_alone(shape, out_dir, dicom, concurrency, profile, f"worker-alone{suffix}")
    return results


def _baseline(shape: Shape, args: argparse.Namespace, out_dir: Path, dicom: list[str], report: ShapeReport) -> Result:
    """The DICOM Cast-style baseline, once (it is 50 to 1,000 times slower: its noise does not matter)."""
    with fhir_server() as fhir, with_rtt(fhir.url, args.rtt) as url:
        partial = args.baseline_instances is not None and args.baseline_instances < shape.total
        limit = ["--limit", str(args.baseline_instances)] if partial else []
        result = run_variant("baseline", shape, out_dir, *dicom, "--fhir", url, *limit)
        if not limit:  # a partial baseline leaves the rest unsynced by design
            report.problems += [f"baseline: {p}" for p in verify(fetch_final(fhir.url), shape)]
    return result


def median_run(results: list[Result]) -> Result:
    """The run of median time (of an odd number of runs), under its variant's plain name: every
    column of the table comes from one real run."""
    ordered = sorted(results, key=lambda r: r.seconds)
    return replace(ordered[len(ordered) // 2], variant=results[0].variant)


def run_experiments(report: ShapeReport, shape: Shape, out_dir: Path, dicom: list[str], concurrency: list[str]) -> None:
    """benchmarks/experiments.py: what read-ahead and multi-page batches would gain (not dicomcast as is)."""
    for experiment in EXPERIMENTS:
        with fhir_server() as fhir:
            work = ["--workdir", str(Path(tempfile.mkdtemp(dir=out_dir)))]
            options = [*dicom, "--fhir", fhir.url, *work, *concurrency, "--experiment", experiment]
            label = f"exp:{experiment}"
            report.results[label] = run_variant("dicomcast", shape, out_dir, *options, label=label)
            report.problems += [f"{label}: {p}" for p in verify(fetch_final(fhir.url), shape)]
    report.results["exp:worker-alone+prefetch"] = worker_alone(
        shape, out_dir, dicom, [*concurrency, "--experiment", "prefetch"], False, "exp:worker-alone+prefetch"
    )


def worker_alone(
    shape: Shape, out_dir: Path, dicom: list[str], concurrency: list[str], profile: bool, label: str = "worker-alone"
) -> Result:
    worker_core, others = cores()
    previous = pin_this_process(others)
    try:
        with stub_fhir(others) as url:
            work = ["--workdir", str(Path(tempfile.mkdtemp(dir=out_dir)))]
            options = [*dicom, "--fhir", url, *work, *concurrency, "--cpu", str(worker_core)]
            return run_variant("dicomcast", shape, out_dir, *options, label=label, profile=profile)
    finally:
        pin_this_process(previous)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shapes", default=DEFAULT_SHAPES, help=f"STUDIESxINSTANCES or mixed:STUDIES,... (default {DEFAULT_SHAPES})"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="scale each shape's larger dimension (0.1: quick)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=Settings().worker.max_concurrent_studies,
        help="DicomCastWorker:MaxConcurrentStudies for dicomcast and the ceiling (default: dicomcast's)",
    )
    parser.add_argument(
        "--rtt", type=float, default=20.0, metavar="MS", help="round-trip time added before FHIR (default 20; 0: none)"
    )
    parser.add_argument(
        "--repeat",
        type=_odd,
        default=3,
        metavar="N",
        help="runs of dicomcast, the ceiling and the worker alone per shape, in turn; the table shows "
        "each one's median run, and every run's seconds are listed (default 3)",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="leave out the (slow) baseline")
    parser.add_argument(
        "--baseline-instances",
        type=int,
        default=None,
        metavar="N",
        help="the baseline syncs only the feed's first N instances of a larger shape: its rate there "
        "can only flatter it (its rewrites grow with the studies); default: all",
    )
    parser.add_argument(
        "--large-study", type=int, default=5000, metavar="N", help="a 1xN study against FHIR limits (0: off)"
    )
    parser.add_argument(
        "--backlog", type=int, default=0, metavar="N", help="a backlog memory run of N instances (0: off)"
    )
    parser.add_argument(
        "--backlog-metadata",
        choices=("plain", "ct"),
        default="plain",
        help="the backlog's instances: generated (19 elements, 1.4 KB of JSON) or each with a real CT "
        "image's elements too (257, 12 KB), as a hospital's feed has them (default plain)",
    )
    parser.add_argument(
        "--backlog-fhir",
        choices=("sekmet", "stub"),
        default="sekmet",
        help="the FHIR server of the backlog run (default sekmet)",
    )
    parser.add_argument(
        "--experiments",
        action="store_true",
        help="also dicomcast with read-ahead / multi-page batches (experiments.py)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy CPU profiles of dicomcast and worker-alone")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, help="where results and variant logs go (default: a temporary directory)")
    return parser.parse_args(argv)


def _odd(text: str) -> int:
    value = int(text)
    if value < 1 or value % 2 == 0:
        raise argparse.ArgumentTypeError(f"--repeat must be an odd number of runs (1, 3, 5...), not {text}")
    return value


def header(args: argparse.Namespace, out_dir: Path) -> str:
    return (
        f"dicomcast throughput benchmark  python {platform.python_version()}  cores {len(os.sched_getaffinity(0))}  "
        f"MaxConcurrentStudies {args.concurrency}  runs {args.repeat} (median shown)  FHIR: sekmet (SQLite), {args.rtt:g} ms RTT  "
        f"feed: Azure DICOM test server v2  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
        f"logs and raw results: {out_dir}"
        + (
            f"\nbaseline: the feed's first {args.baseline_instances} instances of larger shapes"
            if args.baseline_instances is not None and not args.skip_baseline
            else ""
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="dicomcast-bench-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    reports = [bench_shape(shape, args, out_dir) for shape in parse_shapes(args.shapes, args.scale)]
    extras: list[Extra] = []
    if args.large_study:
        extras.append(large_study_extra(Shape(1, args.large_study), args, out_dir))
    if args.backlog:
        extras.append(backlog_extra(args.backlog, args, out_dir))
    print(render(reports, extras, header(args, out_dir), args.rtt))
    if args.profile:
        for stacks in sorted(out_dir.glob("*.stacks.txt")):
            print("\n" + summarize(stacks, top=30, only=PROJECT_CODE))
    return 1 if any(r.problems for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
