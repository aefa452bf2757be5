"""Throughput benchmark (issue 7): dicomcast vs a DICOM Cast-style baseline vs the server's ceiling.

Run it with `scripts/bench.sh` (or `.venv/bin/python -m benchmarks.run --help`).
"""
