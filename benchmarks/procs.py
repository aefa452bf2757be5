"""Processes of the benchmark: a variant in its own process, fresh FHIR servers, the stub, CPU pinning."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.feed import Shape
from benchmarks.measure import Result
from tests import peers

ROOT = Path(__file__).resolve().parent.parent
VARIANT_TIMEOUT = 3600


PY_SPY = str(Path(sys.executable).parent / "py-spy")


def profile_path(out_dir: Path, shape: Shape, name: str) -> Path:
    return out_dir / f"{shape.name}-{name}.stacks.txt"


class BenchmarkError(RuntimeError):
    pass


def run_variant(
    variant: str, shape: Shape, out_dir: Path, *options: str, label: str | None = None, profile: bool = False
) -> Result:
    """Run a variant in its own process; with `profile`, under py-spy (collapsed stacks next to the log)."""
    name = label or variant
    out = out_dir / f"{shape.name}-{name}.json"
    log = out_dir / f"{shape.name}-{name}.log"
    command = [sys.executable, "-m", "benchmarks.variant", variant, "--shape", shape.name, "--out", str(out), *options]
    if profile:
        stacks = profile_path(out_dir, shape, name)
        command = [
            PY_SPY,
            "record",
            "--format",
            "raw",
            "--rate",
            "250",
            "--gil",
            "--threads",
            "-o",
            str(stacks),
            "--",
            *command,
        ]
    if label:
        command += ["--label", label]
    with log.open("wb") as sink:
        done = subprocess.run(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, timeout=VARIANT_TIMEOUT)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise BenchmarkError(f"{name} on {shape.name} exited {done.returncode}; {log}:\n{tail}")
    return Result.load(out)


@contextmanager
def fhir_server() -> Iterator[peers.Peer]:
    peer = peers.start_fhir()
    try:
        yield peer
    finally:
        peer.stop()


@contextmanager
def with_rtt(fhir_url: str, rtt_ms: float) -> Iterator[str]:
    """The FHIR base URL as a client `rtt_ms` away sees it: a loopback proxy that holds each request
    for one round-trip time before forwarding it (0: the server itself), in a process of its own
    (rtt_proxy.py)."""
    if rtt_ms <= 0:
        yield fhir_url
        return
    root, _, path = fhir_url.partition("/fhir")
    command = [sys.executable, "-m", "benchmarks.rtt_proxy", root, str(rtt_ms)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the round-trip-time proxy did not start (exit code {process.poll()})")
        yield f"{url}/fhir{path}"
    finally:
        process.terminate()
        process.wait(timeout=15)


def cores() -> tuple[int, set[int]]:
    """The worker's core and the others (the stub's and the feed's); one core: all share it."""
    available = sorted(os.sched_getaffinity(0))
    return available[0], set(available[1:]) or set(available)


def pin_this_process(cpus: set[int]) -> set[int]:
    """Pin every thread of this process (the feed server's too); returns the previous set."""
    previous = os.sched_getaffinity(0)
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that just ended
            os.sched_setaffinity(int(tid), cpus)
    return previous


@contextmanager
def stub_fhir(cpus: set[int]) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.stub_fhir"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if cpus:
            os.sched_setaffinity(process.pid, cpus)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
