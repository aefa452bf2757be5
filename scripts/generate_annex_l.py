"""Generates dicomcast/fhir/mapping/data/annex_l.json: Body Part Examined -> SNOMED CT.

Source: DICOM PS3.16 Annex L, Table L-1 "Anatomic Region, Body Part Examined and Laterality"
(https://dicom.nema.org/medical/dicom/current/output/chtml/part16/chapter_L.html), in the
machine-readable copy highdicom ships (`highdicom/_standard/anatomic_regions.json`, taken from the
standard's table; edition stated in highdicom's `_standard/README.md`). Only the rows that have a
Body Part Examined defined term are in that copy, which is exactly the part dicomcast needs.

Run after upgrading highdicom (a dev dependency), then review the diff:
    .venv/bin/python scripts/generate_annex_l.py
tests/unit/mapping/test_annex_l.py checks the checked-in file against this script's output and
against a second source (pydicom's DICOM concept and CID tables).
"""

from __future__ import annotations

import json
from importlib import metadata, resources
from pathlib import Path
from typing import Any

TARGET = Path(__file__).resolve().parents[1] / "dicomcast" / "fhir" / "mapping" / "data" / "annex_l.json"


def standard_rows() -> dict[str, list[Any]]:
    """highdicom's copy of Table L-1: defined term -> [scheme, code value, code meaning, paired]."""
    text = (resources.files("highdicom") / "_standard" / "anatomic_regions.json").read_text(encoding="utf-8")
    rows: dict[str, list[Any]] = json.loads(text)
    return rows


def annex_l_table(rows: dict[str, list[Any]]) -> dict[str, Any]:
    """The data file's content: provenance plus term -> {code, display}, SNOMED CT rows only."""
    terms: dict[str, dict[str, str]] = {}
    for term, row in sorted(rows.items()):
        scheme, code, meaning = row[0], row[1], row[2]
        if scheme != "SCT":
            raise ValueError(f"Annex L row {term} uses scheme {scheme}, not SCT: review the source")
        terms[term] = {"code": code, "display": meaning}
    return {
        "source": "DICOM PS3.16 Annex L Table L-1 (Body Part Examined -> SNOMED CT), "
        f"via highdicom {metadata.version('highdicom')} _standard/anatomic_regions.json",
        "generator": "scripts/generate_annex_l.py",
        "terms": terms,
    }


def render(table: dict[str, Any]) -> str:
    """JSON with one term per line, so a new edition of the standard reads as a short diff."""
    head = {key: value for key, value in table.items() if key != "terms"}
    lines = [f"  {json.dumps(term)}: {json.dumps(entry, ensure_ascii=False)}" for term, entry in table["terms"].items()]
    body = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    return body + ',\n "terms": {\n' + ",\n".join(lines) + "\n }\n}\n"


def main() -> None:
    table = annex_l_table(standard_rows())
    TARGET.write_text(render(table), encoding="utf-8")
    print(f"wrote {TARGET} ({len(table['terms'])} terms)")


if __name__ == "__main__":
    main()
