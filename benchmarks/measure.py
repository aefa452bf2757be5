"""What every variant reports, measured the same way: instances, seconds, FHIR requests and bytes
(request bodies, as the worker's own metric counts them), and the process's peak RSS."""

from __future__ import annotations

import json
import resource
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx


@dataclass
class Result:
    variant: str
    shape: str
    instances: int
    seconds: float
    fhir_requests: int
    fhir_bytes: int
    peak_rss_mb: float
    cpu_seconds: float = 0.0  # this process's CPU time (all threads) over the timed part

    @property
    def per_second(self) -> float:
        return self.instances / self.seconds if self.seconds > 0 else 0.0

    @property
    def requests_per_instance(self) -> float:
        return self.fhir_requests / self.instances if self.instances else 0.0

    @property
    def bytes_per_instance(self) -> float:
        return self.fhir_bytes / self.instances if self.instances else 0.0

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Result:
        return cls(**json.loads(path.read_text()))


def peak_rss_mb() -> float:
    """This process's peak resident set size, from VmHWM: ru_maxrss is no good here, because Linux
    carries it over exec from the parent (the benchmark, which holds the whole feed) into the child."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Stopwatch:
    """Wall-clock and CPU seconds of a `with` block."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.cpu_seconds = cpu_seconds() - self._cpu


class RequestCounter:
    """An httpx `on_request` hook (dicomcast.http.make_client) counting requests and body bytes."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request, response: httpx.Response | None, seconds: float) -> None:
        with self._lock:
            self.requests += 1
            self.bytes += len(request.content) if request.content else 0
