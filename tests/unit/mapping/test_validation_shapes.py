"""Validation by remembered shape (shapes.py) accepts exactly what the models accept.

Every golden resource is learned, then each of its primitive values in turn is replaced by values
that are wrong for some FHIR type (empty, blank, spaced, too long, not a date, out of range, of
another JSON type, null) and by the resource's own other values. The same is done to the resource
grown by one more item in every list (a list's shape is its items' distinct shapes). For each
variant, the verdict of `validated` must equal the verdict of the model itself, and the shape path
must have decided most of them (else this test would prove nothing about it).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from dicomcast.errors import MappingError
from dicomcast.fhir.mapping import FhirVersion, shapes, validate
from tests.unit.mapping import golden

TEXTS = [
    "",
    " ",
    " x",
    "x ",
    "a  b",
    "a\tb",
    "é",
    "x" * 65,
    "0",
    "-1",
    "01",
    "1.5",
    "2024",
    "2024-13-01",
    "2024-02-30",
    "2024-01-01T25:00:00Z",
    "2024-01-01T10:00:00",
    "urn:oid:1..2",
    "urn:oid:1.2.3",
    "Patient/x",
    "http://x y",
]
OTHERS: list[Any] = [0, -1, 2**31, True, None]  # same shape for numbers; the others test the way back
OWN_VALUES = 4
PER_VALUE = 12  # probes per place, rotating through all of them from place to place (time)
PER_GROWN_VALUE = 2  # the same in the grown resources, which have about twice the places


def _folded(node: Any) -> Any:
    """The shape as shapes.py folds it, without the checks: lists as their items' distinct shapes."""
    if isinstance(node, dict):
        return tuple((k, ("=", v) if k == "resourceType" else _folded(v)) for k, v in node.items())
    if isinstance(node, list):
        return ("[", *dict.fromkeys(_folded(item) for item in node))
    return type(node)


def _grown(node: Any) -> Any:
    """`node` with one more item (a copy of its first) in every non-empty list."""
    if isinstance(node, dict):
        return {k: _grown(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_grown(item) for item in [*node, *node[:1]]]
    return node


def _leaves(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [leaf for k, v in node.items() if k != "resourceType" for leaf in _leaves(v)]
    if isinstance(node, list):
        return [leaf for item in node for leaf in _leaves(item)]
    return [node]


def _resources(version: FhirVersion) -> Iterator[dict[str, Any]]:
    """The golden resources of `version`, each distinct shape once."""
    shapes = set()
    for path in sorted(golden.GOLDEN.glob(f"*.{version.value}.json")):
        for resource in json.loads(path.read_text(encoding="utf-8"))["resources"]:
            if _folded(resource) not in shapes:
                shapes.add(_folded(resource))
                yield resource


def _replaced(node: Any, index: int, value: Any, seen: list[int]) -> Any:
    """`node` with its `index`-th primitive (in shapes.py's walk order) replaced by `value`."""
    if isinstance(node, dict):
        return {k: v if k == "resourceType" else _replaced(v, index, value, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [_replaced(item, index, value, seen) for item in node]
    seen[0] += 1
    return value if seen[0] - 1 == index else node


def _model_accepts(resource: dict[str, Any], version: FhirVersion) -> bool:
    try:
        validate.model(resource["resourceType"], version).model_validate(resource)
    except (ValueError, TypeError, AttributeError):  # fhir_core's Url trips on a number
        return False
    return True


def _validated_accepts(resource: dict[str, Any], version: FhirVersion) -> bool:
    try:
        validate.validated(resource, version)
    except MappingError:
        return False
    return True


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Nothing remembered yet; counts the resources validated by the model itself."""
    monkeypatch.setattr(validate, "_ACCEPTED", set())
    monkeypatch.setattr(validate, "_REMEMBERED", [0])
    calls = Counter[str]()
    by_model = validate._model_validated

    def counted(resource: dict[str, Any], v: FhirVersion) -> dict[str, Any]:
        calls["n"] += 1
        return by_model(resource, v)

    monkeypatch.setattr(validate, "_model_validated", counted)
    return calls


@pytest.mark.parametrize("version", list(FhirVersion))
def test_a_remembered_shape_accepts_exactly_what_the_model_accepts(
    version: FhirVersion, model_calls: Counter[str]
) -> None:
    outcomes = Counter[str]()
    for resource in _resources(version):
        validate.validated(resource, version)  # learned
        grown = _grown(resource)
        assert _folded(grown) == _folded(resource)
        for start, per_value in ((resource, PER_VALUE), (grown, PER_GROWN_VALUE)):
            values = _leaves(start)
            probes = [*TEXTS, *OTHERS, *sorted({v for v in values if isinstance(v, str)})[:OWN_VALUES]]
            for index in range(len(values)):
                first = index % len(probes)
                for probe in (probes[first:] + probes[:first])[:per_value]:
                    variant = _replaced(start, index, copy.deepcopy(probe), [0])
                    before = model_calls["n"]
                    verdict = _validated_accepts(variant, version)
                    assert verdict == _model_accepts(variant, version), (resource["resourceType"], index, probe)
                    by = "shape" if model_calls["n"] == before else "model"
                    outcomes[f"{by} {'accepted' if verdict else 'refused'}"] += 1
                    if by == "model" and verdict and _folded(variant) == _folded(resource):
                        outcomes["a check refused what the model accepts"] += 1
    assert outcomes["a check refused what the model accepts"] == 0, outcomes
    assert outcomes["shape accepted"] > 1000, outcomes
    assert outcomes["model refused"] > 1000, outcomes  # a value the shape's checks refused, named by the model


def test_a_value_the_checks_refuse_is_refused_with_the_models_words() -> None:
    patient = {"resourceType": "Patient", "id": "a1", "birthDate": "2001-02-03"}
    validate.validated(patient, FhirVersion.R4)
    with pytest.raises(MappingError, match=r"birthDate: "):
        validate.validated({**patient, "birthDate": "2001-02-30"}, FhirVersion.R4)
    with pytest.raises(MappingError, match=r"id: "):
        validate.validated({**patient, "id": "a b"}, FhirVersion.R4)


def test_an_unknown_element_of_a_known_shape_is_refused() -> None:
    patient = {"resourceType": "Patient", "id": "a2", "gender": "male"}
    validate.validated(patient, FhirVersion.R4)
    with pytest.raises(MappingError, match="gendr"):
        validate.validated({"resourceType": "Patient", "id": "a2", "gendr": "male"}, FhirVersion.R4)


def test_what_is_remembered_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_REMEMBERED_PLACES, a new shape is validated by the model and not kept."""
    monkeypatch.setattr(validate, "_ACCEPTED", set())
    monkeypatch.setattr(validate, "_REMEMBERED", [0])
    monkeypatch.setattr(shapes, "MAX_REMEMBERED_PLACES", 4)
    validate.validated({"resourceType": "Patient", "id": "b1", "gender": "male"}, FhirVersion.R4)  # 2 values
    validate.validated({"resourceType": "Patient", "id": "b2", "gender": "male", "active": True}, FhirVersion.R4)
    assert len(validate._ACCEPTED) == 1
    assert validate._REMEMBERED == [2]
    with pytest.raises(MappingError, match="active: "):
        validate.validated({"resourceType": "Patient", "id": "b3", "gender": "male", "active": "maybe"}, FhirVersion.R4)


def test_a_large_study_of_a_known_layout_is_checked_value_by_value(model_calls: Counter[str]) -> None:
    validate.validated(_study(2, modality="CT", second_shape=False), FhirVersion.R4)
    assert model_calls["n"] == 1
    validate.validated(_study(1000, modality="CT", second_shape=False), FhirVersion.R4)
    assert model_calls["n"] == 1  # the shape of 2 instances a series
    bad = _study(1000, modality="CT", second_shape=False)
    bad["series"][1]["instance"][998]["number"] = -1  # unsignedInt
    with pytest.raises(MappingError, match=r"series\.1\.instance\.998\.number"):
        validate.validated(bad, FhirVersion.R4)
    assert model_calls["n"] == 2


def _study(instances: int, *, modality: str = "MR", second_shape: bool = True) -> dict[str, Any]:
    """Two series of `instances` alike; with `second_shape`, each ends with an instance of another shape."""
    other = [{"sopClass": {"code": "urn:oid:1.2.3"}}] if second_shape else []
    return {
        "resourceType": "ImagingStudy",
        "id": "s2",
        "status": "available",
        "subject": {"reference": "Patient/p1"},
        "series": [
            {
                "uid": f"1.3.{series}",
                "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": modality},
                "instance": [
                    {"uid": f"1.3.{series}.{n}", "sopClass": {"code": "urn:oid:1.2.3"}, "number": n}
                    for n in range(1, instances + 1)
                ]
                + [{"uid": f"1.3.{series}.0", **item} for item in other],
            }
            for series in (1, 2)
        ],
    }


def test_a_first_large_study_is_validated_by_the_model_as_a_sample_of_its_shape(
    model_calls: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []
    by_model = validate._model_validated
    monkeypatch.setattr(validate, "_model_validated", lambda r, v: seen.append(r) or by_model(r, v))
    study = _study(1000)
    assert validate.validated(study, FhirVersion.R4) is study
    assert model_calls["n"] == 1
    (sampled,) = seen
    assert _folded(sampled) == _folded(study)  # the study's shape: one item of each item shape a list
    assert [len(s["instance"]) for s in sampled["series"]] == [2]  # the two series are alike too
    assert sampled["series"][0]["instance"] == study["series"][0]["instance"][:1] + study["series"][0]["instance"][-1:]
    validate.validated(_study(3), FhirVersion.R4)
    assert model_calls["n"] == 1  # remembered


def test_a_sample_the_model_refuses_is_validated_whole_and_named_where_it_is(model_calls: Counter[str]) -> None:
    study = _study(1000)
    del study["series"][0]["instance"][998]["uid"]  # required: a shape the model refuses
    with pytest.raises(MappingError, match=r"valid FHIR R4: series\.0\.instance\.998\.uid: "):
        validate.validated(study, FhirVersion.R4)
    assert model_calls["n"] == 2  # the sample, then the study itself
    assert not validate._ACCEPTED


def test_a_resource_without_repeated_item_shapes_is_validated_once() -> None:
    patient = {"resourceType": "Patient", "id": "a3", "name": [{"family": "Roe"}, {"given": ["Ann"]}]}
    assert shapes.sample(patient, validate.model("Patient", FhirVersion.R4)) is None


class _Unhashable:
    """Metadata that cannot be a cache key, as a model's own constraint might be."""

    __hash__ = None  # type: ignore[assignment]


def test_elements_of_one_type_share_its_check_and_an_unhashable_type_gets_its_own() -> None:
    from typing import Annotated

    from fhir.resources.R4B.imagingstudy import ImagingStudy

    places = shapes._places_of(ImagingStudy)
    assert places["id"].check is shapes._places_of(ImagingStudy)["id"].check
    series = places["series"].element
    assert series["uid"].check is places["id"].check  # both FHIR `id`
    own = shapes._check_of(Annotated[str, _Unhashable()])
    assert own("text") and not own(5)
