"""The benchmark's round-trip-time proxy in a process of its own.

    python -m benchmarks.rtt_proxy UPSTREAM_ROOT MILLISECONDS   # prints its URL, serves until stopped

In the benchmark process it would share a GIL with the Azure DICOM test server, so a feed page
being served would hold up FHIR answers on their way back: a coupling no deployment has (the DICOM
service and the network to FHIR are elsewhere) and that the ceiling, which reads no feed, escapes.
"""

from __future__ import annotations

import signal
import sys
import threading

from tests.servers.faulty_proxy import FaultyProxy


def main(argv: list[str]) -> None:
    upstream, milliseconds = argv[0], float(argv[1])
    proxy = FaultyProxy(upstream, rate=0.0, latency=milliseconds / 1000).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(proxy.url, flush=True)
    try:
        stop.wait()
    finally:
        proxy.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
