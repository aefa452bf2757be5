"""A second, independent FHIR validator over every golden file: @medplum/core's validateResource.

fhir.resources (test_golden.py) validates R4 and R5; medplum (a different code base, from the FHIR
StructureDefinitions) validates R4. @medplum/core 4.5.2 is pinned: 5.x needs Node 22.
tests/servers/medplum_validator/ holds it with its package-lock.json; scripts/setup.sh installs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.mapping import golden

VALIDATOR = Path(__file__).resolve().parents[2] / "servers" / "medplum_validator"
R4_GOLDEN = sorted(golden.GOLDEN.glob("*.R4.json"))


def _validate(paths: list[Path]) -> dict[str, dict[str, Any]]:
    node = shutil.which("node")
    assert node, "Node.js is needed for the medplum validator (scripts/setup.sh installs the npm peers)"
    assert (VALIDATOR / "node_modules" / "@medplum" / "core").is_dir(), (
        f"{VALIDATOR}/node_modules missing: run scripts/setup.sh (npm ci)"
    )
    done = subprocess.run(
        [node, "validate.mjs", *map(str, paths)], cwd=VALIDATOR, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {Path(r["file"]).name: r for r in results}


@pytest.fixture(scope="module")
def medplum_results() -> dict[str, dict[str, Any]]:
    return _validate(R4_GOLDEN)


def test_every_r4_golden_file_is_checked(medplum_results: dict[str, dict[str, Any]]) -> None:
    assert len(R4_GOLDEN) >= 17
    assert sorted(medplum_results) == [p.name for p in R4_GOLDEN]
    for path in R4_GOLDEN:
        written = json.loads(path.read_text(encoding="utf-8"))["resources"]
        assert medplum_results[path.name]["resources"] == len(written) > 0


@pytest.mark.parametrize("name", [p.name for p in R4_GOLDEN])
def test_medplum_finds_no_issue(medplum_results: dict[str, dict[str, Any]], name: str) -> None:
    assert medplum_results[name]["issues"] == []


def test_medplum_does_flag_a_broken_resource(tmp_path: Path) -> None:
    """The control: the same run does report what is wrong, so an empty list above means something."""
    broken = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "not a uri", "code": " padded"}]},
        "valueQuantity": {"value": "1"},
        "unknownElement": True,
    }
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    issues = _validate([path])["broken.json"]["issues"]
    flagged = {expression for issue in issues for expression in issue["expression"]}
    assert {
        "Observation.code.coding[0].system",
        "Observation.code.coding[0].code",
        "Observation.unknownElement",
    } <= flagged
