"""The architecture's guards hold: every top-level module is under the "only the entry points import
the command line" contract, and a warning raised from dicomcast's own code fails a test."""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import pytest

import dicomcast

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = {"dicomcast.cli", "dicomcast.__main__"}


def _contract(name: str) -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["name"] == name)


def test_every_module_but_the_entry_points_is_forbidden_to_import_the_cli() -> None:
    package = Path(dicomcast.__file__).parent
    modules = {f"dicomcast.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    modules |= {f"dicomcast.{p.parent.name}" for p in package.glob("*/__init__.py")}
    listed = set(_contract("Only the entry points import the command line")["source_modules"])  # type: ignore[arg-type]
    assert modules - ENTRY_POINTS - listed == set(), "add the new module to the contract in pyproject.toml"


def test_a_warning_from_dicomcast_code_is_an_error() -> None:
    with pytest.raises(UserWarning, match="from dicomcast"):
        warnings.warn_explicit("from dicomcast", UserWarning, "dicomcast/x.py", 1, module="dicomcast.x")


def test_another_packages_warning_stays_a_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:  # keeps the configured filters
        warnings.warn_explicit("their api changes", UserWarning, "lib.py", 1, module="somelib")
    assert [str(w.message) for w in caught] == ["their api changes"]
