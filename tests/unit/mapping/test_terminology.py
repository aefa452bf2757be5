"""PS3.16 Annex L table and coding-scheme systems: checked against the generator and a second source."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest
from pydicom.sr._cid_dict import cid_concepts
from pydicom.sr._concepts_dict import concepts

from dicomcast.dicom.dicomjson import CodeItem
from dicomcast.fhir.mapping import coding_schemes as cs
from dicomcast.fhir.mapping import terminology as term

ROOT = Path(__file__).resolve().parents[3]
DATA_FILE = ROOT / "dicomcast" / "fhir" / "mapping" / "data" / "annex_l.json"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_annex_l", ROOT / "scripts" / "generate_annex_l.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pydicom_sct() -> dict[str, str]:
    """SNOMED CT id -> pydicom keyword over every DICOM context group (pydicom builds its tables
    from the standard's PS3.16 DocBook source, independently of highdicom's copy of Annex L).
    """
    return {code: keyword for keyword, codes in concepts["SCT"].items() for code in codes}


def test_data_file_is_what_the_generator_makes_from_the_standard_table() -> None:
    generator = _generator()
    expected = generator.render(generator.annex_l_table(generator.standard_rows()))
    assert DATA_FILE.read_text(encoding="utf-8") == expected, "run scripts/generate_annex_l.py"


def test_whole_annex_l_is_loaded() -> None:
    assert len(term.BODY_PARTS) >= 317
    assert all(cs.is_sctid(code) for code, _ in term.BODY_PARTS.values())


def test_every_annex_l_code_is_a_dicom_snomed_concept_in_pydicom() -> None:
    """Second source: each code is a SNOMED CT concept the standard's context groups use."""
    known = _pydicom_sct()
    unknown = sorted(t for t, (code, _) in term.BODY_PARTS.items() if code not in known)
    # Added to Annex L after the PS3.16 edition pydicom 3.0 was generated from.
    assert unknown == ["LOWERTRUNK", "UPPERTRUNK"]


def test_cid_4031_meanings_agree_with_annex_l() -> None:
    """For the codes of CID 4031 (Common Anatomic Regions) the pydicom keyword, made from the
    CID's code meaning, matches the Annex L code meaning of a term with that code.
    """
    keywords = {code: keyword for keyword in cid_concepts[4031]["SCT"] for code in concepts["SCT"][keyword]}
    meanings: dict[str, set[str]] = {}
    for code, display in term.BODY_PARTS.values():
        meanings.setdefault(code, set()).add(re.sub(r"[^a-z]", "", display.lower()))
    shared = [code for code in keywords if code in meanings]
    assert len(shared) >= 95
    disagree = sorted(code for code in shared if keywords[code].lower() not in meanings[code])
    assert disagree == []


@pytest.mark.parametrize(
    ("term_", "code"),
    [
        ("CHEST", "816094009"),  # the current standard (43799004 before 2019)
        ("TMJ", "53620006"),
        ("FOREARM", "14975008"),
        ("UPPERARM", "40983000"),
        ("THORAX", "816094009"),
        ("LOWERLEG", "30021000"),
        ("SSPINE", "54735007"),
        ("SELLA", "42575006"),
        ("IAC", "361078006"),
        ("EAR", "117590005"),
    ],
)
def test_terms_the_review_found_wrong_or_unsystemed(term_: str, code: str) -> None:
    coding = term.body_part_coding(term_.lower())
    assert coding is not None
    assert coding["system"] == cs.SNOMED
    assert coding["code"] == code


def test_body_part_outside_annex_l_makes_no_coding() -> None:
    assert term.body_part_coding("LEFTTHUMBNAIL") is None


def test_srt_codes_become_snomed_ct_concept_ids() -> None:
    coding = term.coding(CodeItem("T-D3000", "SRT", "Chest", "1.1"))
    assert coding == {"system": cs.SNOMED, "code": "51185008", "display": "Chest"}


def test_srt_code_without_translation_keeps_its_own_system() -> None:
    coding = term.coding(CodeItem("T-NOPE1", "SRT", "Unknown"))
    assert coding == {"system": cs.FALLBACK_PREFIX + "SRT", "code": "T-NOPE1", "display": "Unknown"}


def test_sct_labelled_legacy_code_is_translated_or_kept_off_snomed() -> None:
    assert term.coding(CodeItem("T-D3000", "SCT", "Chest")) == {
        "system": cs.SNOMED,
        "code": "51185008",
        "display": "Chest",
    }
    kept = term.coding(CodeItem("BOGUS-1", "SCT", "x"))
    assert kept is not None and kept["system"] != cs.SNOMED


@pytest.mark.parametrize(
    ("designator", "system"),
    [
        ("DCM", "http://dicom.nema.org/resources/ontology/DCM"),
        ("LN", "http://loinc.org"),
        ("UCUM", "http://unitsofmeasure.org"),
        ("SCT", "http://snomed.info/sct"),
        ("RADLEX", "http://radlex.org"),
        ("FMA", "urn:oid:2.16.840.1.113883.6.119"),
        ("MSH", "urn:oid:2.16.840.1.113883.6.177"),
        ("99LOCAL", "urn:dicom:coding-scheme-designator:99LOCAL"),
        ("L", "urn:dicom:coding-scheme-designator:L"),
        ("A B/C", "urn:dicom:coding-scheme-designator:A%20B%2FC"),
    ],
)
def test_every_designator_has_a_system(designator: str, system: str) -> None:
    assert cs.scheme_system(designator) == system


def test_no_coding_without_a_system() -> None:
    assert term.coding(CodeItem("X1", None, "Local")) is None
    assert term.codeable_concept([CodeItem("X1", None, "Local")]) == {"text": "Local"}


def test_snomed_ids_checked_by_verhoeff_digit() -> None:
    assert cs.is_sctid("816094009")
    assert not cs.is_sctid("816094008")
    assert not cs.is_sctid("113722")  # a DCM code is no SNOMED CT id


def test_data_file_names_its_source() -> None:
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    assert "Annex L" in data["source"]
    assert data["generator"] == "scripts/generate_annex_l.py"
