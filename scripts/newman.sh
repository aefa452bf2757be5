#!/usr/bin/env bash
# The Postman collection (deploy/postman/) run by newman against a local FHIR server after a sync of
# the sample studies from a local Orthanc with the real CLI. Exits non-zero on any failed assertion.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x deploy/postman/node_modules/.bin/newman ]; then
  (cd deploy/postman && npm ci --silent --no-audit --no-fund >/dev/null)
fi
exec .venv/bin/python scripts/newman.py "$@"
