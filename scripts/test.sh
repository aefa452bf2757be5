#!/usr/bin/env bash
# The whole test suite: installs what it needs, then lint, types, Dockerfile lint and every test
# (unit and integration against real Orthanc, a real FHIR server and loopback Azure fakes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONDONTWRITEBYTECODE=1
code=$(for d in dicomcast tests benchmarks migrations scripts; do [ -e "$d" ] && echo "$d"; done)
echo "[test] ruff";   .venv/bin/ruff check $code
echo "[test] format"; .venv/bin/ruff format --check $code
echo "[test] mypy";   .venv/bin/mypy dicomcast
echo "[test] import-linter"; .venv/bin/lint-imports
if [ -f Dockerfile ]; then echo "[test] hadolint"; .venv/bin/hadolint Dockerfile; fi
echo "[test] pytest"
.venv/bin/python -m pytest "$@"
if [ -x scripts/newman.sh ]; then echo "[test] newman (Postman collection)"; bash scripts/newman.sh; fi
