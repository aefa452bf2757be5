#!/usr/bin/env bash
# The throughput benchmark (issue 7) in one command: setup, then every shape and variant, one table.
#   bash scripts/bench.sh                       # 1x1000, 200x50, 2000x1 + a 1x5000 study (~10 min)
#   bash scripts/bench.sh --scale 0.1 --large-study 0    # a quick run (~1 min)
#   bash scripts/bench.sh --backlog 100000      # adds the 100k-instance memory run
#   bash scripts/bench.sh --profile             # also py-spy CPU profiles of the worker variants
# Options: .venv/bin/python -m benchmarks.run --help. Needs 2+ cores for the one-core worker-alone run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x .venv/bin/py-spy ] || .venv/bin/python -m pip install -q 'py-spy==0.4.3'
exec .venv/bin/python -m benchmarks.run "$@"
