#!/usr/bin/env bash
# Puts a filled-in dicomcast settings file (TOML or JSON, same keys as `dicomcast --config`) into an
# Azure Key Vault, one secret per setting, named A--B--C for setting A:B:C (DICOM Cast's names).
#
#   deploy/keyvault/set-secrets.sh VAULT_NAME settings.toml [--dry-run]
#
# Needs the Azure CLI (`az login` first) and python3 >= 3.11. Names are checked against
# secrets.json next to this script; an unknown name stops the script before anything is written.
# Values go to `az` through a private temporary file, never on a command line (no `ps` leak),
# and are never printed. Restart the container group afterwards: settings are read at start-up.
set -euo pipefail

usage() { echo "usage: $0 VAULT_NAME SETTINGS_FILE [--dry-run]" >&2; exit 2; }
[[ $# -ge 2 && $# -le 3 ]] || usage
vault=$1
settings=$2
dry_run=false
if [[ $# -eq 3 ]]; then
  [[ $3 == --dry-run ]] || usage
  dry_run=true
fi
[[ -r $settings ]] || { echo "cannot read $settings" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
chmod 700 "$workdir"

# Flatten the file into $workdir/<n>.name and $workdir/<n>.value, checking every name.
python3 - "$settings" "$here/secrets.json" "$workdir" <<'PY'
import json, sys, tomllib
from pathlib import Path

settings, catalog, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
text = settings.read_text(encoding="utf-8")
data = tomllib.loads(text) if settings.suffix.lower() == ".toml" else json.loads(text)
known = json.loads(catalog.read_text(encoding="utf-8"))
patterns = [e["name"].lower().split("--") for e in known["secrets"]]
aliases = {a["name"].lower() for a in known.get("aliases", [])}

def fits(parts):
    lowered = [p.lower() for p in parts]
    return "--".join(lowered) in aliases or any(
        len(p) == len(lowered) and all(a == "*" or a == b for a, b in zip(p, lowered)) for p in patterns)

def flatten(node, prefix):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from flatten(value, [*prefix, str(key)])
    elif isinstance(node, list) and node and all(isinstance(v, dict) for v in node):
        for index, item in enumerate(node):
            yield from flatten(item, [*prefix, str(index)])
    else:
        yield prefix, node

def text_of(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)

unknown, count = [], 0
for parts, value in flatten(data, []):
    if value is None or value == "":
        continue
    if not fits(parts):
        unknown.append("--".join(parts))
        continue
    (out / f"{count}.name").write_text("--".join(parts), encoding="utf-8")
    (out / f"{count}.value").write_text(text_of(value), encoding="utf-8")
    count += 1
if unknown:
    sys.exit("not dicomcast settings (see secrets.json): " + ", ".join(unknown))
PY

shopt -s nullglob
names=("$workdir"/*.name)
[[ ${#names[@]} -gt 0 ]] || { echo "no settings with a value in $settings" >&2; exit 1; }
for name_file in "${names[@]}"; do
  name=$(<"$name_file")
  value_file=${name_file%.name}.value
  if $dry_run; then
    echo "would set $name"
  else
    az keyvault secret set --vault-name "$vault" --name "$name" --file "$value_file" --encoding utf-8 --output none
    echo "set $name"
  fi
done
echo "done: ${#names[@]} secrets in $vault; stop and start the container group to load them"
