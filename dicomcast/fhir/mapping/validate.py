"""Validation of produced resources with the `fhir.resources` models of the target release.

R4 uses the R4B models (R4B only added resources R4 servers do not need for these types);
the top-level `fhir.resources` package is R5. A resource that does not validate is a bug or a
value the readers let through: it raises MappingError naming the element path, never a value.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from dicomcast.errors import MappingError
from dicomcast.fhir.mapping import shapes
from dicomcast.fhir.mapping.types import FhirVersion, Resource

_MODULES = {"ImagingStudy": "imagingstudy", "Patient": "patient", "Observation": "observation", "Endpoint": "endpoint"}
# The element types these resources hold (every golden output's): `fhir_core` imports an element's
# model the first time a value of it is validated, which cost the first batch a tenth of a second.
_ELEMENT_MODULES = (
    "codeableconcept",
    "codeablereference",
    "coding",
    "extension",
    "humanname",
    "identifier",
    "meta",
    "quantity",
    "reference",
)


def _package(version: FhirVersion) -> str:
    return "fhir.resources.R4B" if version is FhirVersion.R4 else "fhir.resources"


@lru_cache(maxsize=16)
def model(resource_type: str, version: FhirVersion) -> Any:
    module = importlib.import_module(f"{_package(version)}.{_MODULES[resource_type]}")
    return getattr(module, resource_type)


def load_models(version: FhirVersion) -> None:
    """Import the release's models and their element types at start-up, not in the first study's
    mapping (a few tenths of a second of CPU and a few MB, once, instead of in the first batch)."""
    for resource_type in _MODULES:
        model(resource_type, version)
    for name in _ELEMENT_MODULES:
        importlib.import_module(f"{_package(version)}.{name}")


# Shapes the models accepted, with a check per primitive value (shapes.py).
_ACCEPTED: dict[tuple[FhirVersion, shapes.Shape], list[shapes.Check]] = {}
_REMEMBERED = [0]  # values of all the shapes in _ACCEPTED


def validated(resource: Resource, version: FhirVersion) -> Resource:
    """`resource` itself, once its release's model accepts it (or, of a shape the model accepted
    before, once each primitive value passes its element's type: shapes.py)."""
    found = shapes.shape_of(resource)
    if found is None:
        return _model_validated(resource, version)
    shape, values = found
    checks = _ACCEPTED.get((version, shape))
    if checks is not None and all(check(value) for check, value in zip(checks, values, strict=True)):
        return resource
    _model_validated(resource, version)
    if checks is None and _room_for(len(values)):
        remembered = shapes.checks_for(resource, model(resource["resourceType"], version))
        if remembered is not None and len(remembered) == len(values):
            _ACCEPTED[(version, shape)] = remembered
            _REMEMBERED[0] += len(values)
    return resource


def _room_for(values: int) -> bool:
    return len(_ACCEPTED) < shapes.MAX_SHAPES and _REMEMBERED[0] + values <= shapes.MAX_REMEMBERED_VALUES


def _model_validated(resource: Resource, version: FhirVersion) -> Resource:
    """`resource` itself, once its release's model accepts it; else MappingError naming where."""
    try:
        model(resource["resourceType"], version).model_validate(resource)
    except ValidationError as error:
        where = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['type']}"
            for e in error.errors(include_input=False, include_url=False)[:5]
        )
        raise MappingError(f"produced {resource['resourceType']} is not valid FHIR {version.value}: {where}") from None
    except (ValueError, TypeError, AttributeError) as error:  # a model's own validator tripping on a value
        raise MappingError(
            f"produced {resource['resourceType']} is not valid FHIR {version.value}: "
            f"{type(error).__name__} in the model's validation"  # its text may quote the value
        ) from None
    return resource
