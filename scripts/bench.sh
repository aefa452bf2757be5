#!/usr/bin/env bash
# The throughput benchmark (issues 7, 14) in one command: setup, then every shape and variant, one table.
#   bash scripts/bench.sh                       # 1x1000, 200x50, 2000x1, mixed:40 + a 1x5000 study, 20 ms RTT
#   bash scripts/bench.sh --scale 0.1 --large-study 0    # a quick run
#   bash scripts/bench.sh --rtt 0               # FHIR on loopback without the added round-trip time
#   bash scripts/bench.sh --shapes mixed:100    # a hospital's day: 60% 1-4, 30% 50-300, 10% 1,000+ instances
#   bash scripts/bench.sh --backlog 100000      # adds the 100k-instance memory run
#   bash scripts/bench.sh --profile             # also py-spy CPU profiles of the worker variants
# Options: .venv/bin/python -m benchmarks.run --help. Needs 2+ cores for the one-core worker-alone run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x .venv/bin/py-spy ] || .venv/bin/python -m pip install -q 'py-spy==0.4.3'
exec .venv/bin/python -m benchmarks.run "$@"
