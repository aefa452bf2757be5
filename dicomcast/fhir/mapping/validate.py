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


# Shapes the models accepted (shapes.py), and their places in all.
_ACCEPTED: set[tuple[FhirVersion, shapes.Shape]] = set()
_REMEMBERED = [0]


def validated(resource: Resource, version: FhirVersion) -> Resource:
    """`resource` itself, once its release's model accepts it (or, of a shape the model accepted
    before, once each primitive value passes its element's type: shapes.py)."""
    release_model = model(resource["resourceType"], version)
    shape = shapes.checked_shape(resource, release_model)
    if shape is not None and (version, shape) in _ACCEPTED:
        return resource
    if shape is not None and _sample_accepted(resource, release_model, shape, version):
        _remember(version, shape)
        return resource
    _model_validated(resource, version)
    if shape is not None:  # the model and every check accepted it
        _remember(version, shape)
    return resource


def _sample_accepted(resource: Resource, release_model: Any, shape: shapes.Shape, version: FhirVersion) -> bool:
    """Whether the model accepts a sample of the resource's shape (shapes.sample): then it accepts
    the resource, whose values all passed their checks. A shape's first resource of a large study
    cost the model 25 us an instance. When the sample is refused, the model validates the resource
    itself, so that what is wrong is named where it is in the resource."""
    sampled = shapes.sample(resource, release_model)
    if sampled is None or shapes.checked_shape(sampled, release_model) != shape:
        return False
    try:
        _model_validated(sampled, version)
    except MappingError:
        return False
    return True


def _remember(version: FhirVersion, shape: shapes.Shape) -> None:
    places = shapes.places(shape)
    if len(_ACCEPTED) < shapes.MAX_SHAPES and _REMEMBERED[0] + places <= shapes.MAX_REMEMBERED_PLACES:
        _ACCEPTED.add((version, shape))
        _REMEMBERED[0] += places


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
