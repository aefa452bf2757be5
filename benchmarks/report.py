"""The benchmark's output: one table for all shapes and variants, the ratios, and the targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.measure import Result

VARIANTS = (
    "dicomcast",
    "baseline",
    "ceiling",
    "worker-alone",
    "exp:prefetch",
    "exp:batch+prefetch",
    "exp:worker-alone+prefetch",
)
HEADER = ("shape", "variant", "instances", "seconds", "inst/s", "req/inst", "bytes/inst", "peak RSS MB", "CPU s")


@dataclass
class ShapeReport:
    shape: str  # as run
    target_name: str  # as asked for (before --scale)
    results: dict[str, Result] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # what FHIR held afterwards, if not what it should
    runs: dict[str, list[float]] = field(default_factory=dict)  # variant -> seconds of each run, in turn

    def ratio(self, numerator: str, denominator: str) -> float | None:
        top, bottom = self.results.get(numerator), self.results.get(denominator)
        if top is None or bottom is None or bottom.per_second == 0:
            return None
        return top.per_second / bottom.per_second


@dataclass
class Extra:
    """A run outside the table (the 100k backlog, the large study): a title and lines of facts."""

    title: str
    lines: list[str]
    target: tuple[str, bool] | None = None  # (target text, met)


def _row(report: ShapeReport, result: Result) -> tuple[str, ...]:
    return (
        report.shape,
        result.variant,
        str(result.instances),
        f"{result.seconds:.2f}",
        f"{result.per_second:,.0f}",
        f"{result.requests_per_instance:.3f}",
        f"{result.bytes_per_instance:,.0f}",
        f"{result.peak_rss_mb:.0f}",
        f"{result.cpu_seconds:.2f}",
    )


def table(reports: Sequence[ShapeReport]) -> str:
    rows: list[tuple[str, ...]] = [HEADER]
    for report in reports:
        rows += [_row(report, report.results[v]) for v in VARIANTS if v in report.results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = [
        "  ".join(
            cell.rjust(w) if i > 1 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def runs(reports: Sequence[ShapeReport]) -> str:
    """Every run's seconds, where a variant ran more than once (the table shows the median run)."""
    lines = ["runs (seconds, in the order run; the table shows the median):"]
    for r in reports:
        for variant in VARIANTS:
            seconds = r.runs.get(variant, [])
            if len(seconds) > 1:
                lines.append(f"  {r.shape:>12}  {variant:<13} " + "  ".join(f"{s:.2f}" for s in seconds))
    return "\n".join(lines) if len(lines) > 1 else ""


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def ratios(reports: Sequence[ShapeReport]) -> str:
    lines = ["ratios (instances/s):"]
    for r in reports:
        lines.append(
            f"  {r.shape:>12}  a/b (dicomcast/baseline) = {_fmt(r.ratio('dicomcast', 'baseline'), 1)}x"
            f"   a/c (dicomcast/ceiling) = {_fmt(r.ratio('dicomcast', 'ceiling'))}"
        )
    return "\n".join(lines)


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


def targets(reports: Sequence[ShapeReport], extras: Sequence[Extra], rtt_ms: float = 0.0) -> str:
    """Issue 14's targets, on every shape."""
    lines = ["targets:"]
    for r in reports:
        speedup = r.ratio("dicomcast", "baseline")
        lines.append(
            f"  >= 50x baseline at {rtt_ms:g} ms RTT on {r.shape}: {_fmt(speedup, 1)}x  "
            f"{_met(None if speedup is None else speedup >= 50)}"
        )
    for r in reports:
        result = r.results.get("dicomcast")
        value = result.requests_per_instance if result else None
        lines.append(
            f"  <= 0.05 FHIR requests/instance on {r.shape}: {_fmt(value, 3)}  "
            f"{_met(None if value is None else value <= 0.05)}"
        )
    for r in reports:
        value = r.ratio("dicomcast", "ceiling")
        lines.append(
            f"  >= 0.8 of ceiling on {r.shape}: {_fmt(value)}  {_met(None if value is None else value >= 0.8)}"
        )
    for r in reports:
        alone = r.results.get("worker-alone")
        value = alone.per_second if alone else None
        lines.append(
            f"  >= 2,000 inst/s worker alone (1 core) on {r.shape}: {_fmt(value, 0)}  "
            f"{_met(None if value is None else value >= 2000)}"
        )
    for extra in extras:
        if extra.target:
            lines.append(f"  {extra.target[0]}  {_met(extra.target[1])}")
    return "\n".join(lines)


def render(reports: Sequence[ShapeReport], extras: Sequence[Extra], header: str, rtt_ms: float = 0.0) -> str:
    parts = [header, table(reports), *filter(None, [runs(reports)]), ratios(reports)]
    problems = [f"  {r.shape}: {p}" for r in reports for p in r.problems]
    if problems:
        parts.append("CHECK FAILED (FHIR content after the run):\n" + "\n".join(problems))
    for extra in extras:
        parts.append(extra.title + "\n" + "\n".join(f"  {line}" for line in extra.lines))
    parts.append(targets(reports, extras, rtt_ms))
    return "\n\n".join(parts)
