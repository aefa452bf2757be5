#!/usr/bin/env bash
# Installs everything dicomcast's demo and tests need, on Debian/Ubuntu; safe to run again.
#   - Orthanc + its DICOMweb plugin (Debian packages)
#   - .venv: dicomcast itself (editable) with its test tools
#   - .tools/fhir-venv: the sekmet-fhir FHIR R4 test server, pinned, in its own venv
#   - npm test peers (package-lock.json files under tests/servers/ and deploy/postman/)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
SEKMET_VERSION=0.1.1

say() { printf '[setup] %s\n' "$*"; }

# Run a noisy installer; show its output only when it fails.
quiet() {
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then cat "$log"; rm -f "$log"; say "failed: $*"; exit 1; fi
  rm -f "$log"
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root for: $*"; exit 1; fi
}

if ! command -v Orthanc >/dev/null 2>&1 && [ ! -x /usr/sbin/Orthanc ] || [ ! -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then
  say "installing Orthanc and its DICOMweb plugin (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null
fi

"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "dicomcast needs Python 3.11 or newer")'

stamp=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.stamp 2>/dev/null)" != "$stamp" ]; then
  say "creating .venv and installing dicomcast with its test tools"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  quiet .venv/bin/python -m pip install --upgrade pip
  quiet .venv/bin/python -m pip install -e '.[dev]'
  .venv/bin/python -c 'import dicomcast, pytest, mypy'   # fails loudly if the install did not work
  echo "$stamp" > .venv/.stamp
fi

if [ ! -x .tools/fhir-venv/bin/sekmet ]; then
  say "installing the sekmet-fhir $SEKMET_VERSION FHIR R4 test server in .tools/fhir-venv"
  mkdir -p .tools
  "$PYTHON" -m venv .tools/fhir-venv
  quiet .tools/fhir-venv/bin/python -m pip install "sekmet-fhir==$SEKMET_VERSION"
  [ -x .tools/fhir-venv/bin/sekmet ]
fi

for lock in tests/servers/*/package-lock.json deploy/postman/package-lock.json; do
  [ -f "$lock" ] || continue
  dir=$(dirname "$lock")
  if [ ! -d "$dir/node_modules" ] || [ "$lock" -nt "$dir/node_modules" ]; then
    say "installing npm peers in $dir"
    (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null)
    touch "$dir/node_modules"
  fi
done
say "ready (root: $ROOT)"
