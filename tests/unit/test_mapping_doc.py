"""docs/mapping.md names golden files and tests as proofs: each must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "mapping.md").read_text(encoding="utf-8")
GOLDEN = ROOT / "tests" / "data" / "golden"


def test_every_test_the_doc_names_exists() -> None:
    named = re.findall(r"`((?:tests/[\w/]+/)?test_\w+\.py)::(test_\w+)`", DOC)
    assert len(named) >= 15
    for file, test in named:
        path = ROOT / file if file.startswith("tests/") else ROOT / "tests" / "unit" / "mapping" / file
        assert path.is_file(), file
        assert re.search(rf"^def {test}\(", path.read_text(encoding="utf-8"), re.MULTILINE), f"{file}::{test}"


def test_every_golden_file_the_doc_names_exists() -> None:
    names = set(re.findall(r"`((?:generated_)?[\w-]+_?\w*)`", DOC))
    golden = {p.name.split(".")[0] for p in GOLDEN.glob("*.R4.json")}
    named = {n for n in names if n in golden or n.startswith("generated_")}
    assert len(named) >= 5
    assert named <= golden, named - golden
