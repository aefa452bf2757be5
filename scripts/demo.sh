#!/usr/bin/env bash
# The main job end to end on local real servers: installs what it needs, starts Orthanc and a FHIR R4
# server on loopback, stores pydicom's sample studies in Orthanc, runs `dicomcast run --once`
# (SQLite store in ./dicomcast-demo/), and prints what landed in FHIR.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
