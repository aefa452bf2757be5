"""Shapes of resources the `fhir.resources` models have accepted, so that the next resource of the
same shape is validated value by value instead of model by model.

What a model checks is of two kinds. The shape: which elements are present, in which lists, nested
how, and the JSON type of each value (unknown elements, missing required ones, a null in a list of
elements, a choice given twice: `fhir_core`'s model validators look at presence, never at values).
And each primitive value against its element's FHIR type (an `id`'s pattern and length, a
`dateTime`'s form, an `unsignedInt`'s range). A resource whose shape equals one the model accepted
is valid exactly when each of its values passes its element's type, and those types are checked
with the very pydantic validators the model uses (a TypeAdapter of the element's annotation).

Dicomcast maps one-instance studies by the thousand, all of a few shapes: model by model, most of
their CPU went to validation. A resource of a shape not seen yet, or with a value that fails, is
validated by the model as before, which names what is wrong.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from fhir_core.types import FhirBase
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

Shape = tuple[Any, ...]
Check = Callable[[Any], bool]
MAX_LEAVES = 400  # a larger resource (a study of hundreds of instances) rarely repeats its shape
# Per process; beyond either, new shapes are validated by the model each time. About 150 bytes are
# kept per value, so what is remembered stays under 16 MB whatever the studies look like.
MAX_SHAPES = 2048
MAX_REMEMBERED_VALUES = 100_000


class _TooLargeError(Exception):
    pass


def shape_of(resource: dict[str, Any]) -> tuple[Shape, list[Any]] | None:
    """The resource's shape and its primitive values in walk order; None past MAX_LEAVES."""
    leaves: list[Any] = []
    try:
        return _dict_shape(resource, leaves), leaves
    except _TooLargeError:
        return None


def _dict_shape(node: dict[str, Any], leaves: list[Any]) -> Shape:
    return tuple((key, ("=", value) if key == "resourceType" else _shape(value, leaves)) for key, value in node.items())


def _shape(value: Any, leaves: list[Any]) -> Any:
    if isinstance(value, dict):
        return _dict_shape(value, leaves)
    if isinstance(value, list):
        return ("[", *(_shape(item, leaves) for item in value))
    if len(leaves) >= MAX_LEAVES:
        raise _TooLargeError
    leaves.append(value)
    return type(value)


def checks_for(resource: dict[str, Any], model: type[BaseModel]) -> list[Check] | None:
    """One check per primitive value, in `shape_of`'s order, from the model's own field types; None
    when an element is not found in the model (the model rejected it: nothing to remember)."""
    checks: list[Check] = []
    try:
        _dict_checks(resource, model, checks)
    except KeyError:
        return None
    return checks


def _dict_checks(node: dict[str, Any], model: type[BaseModel], checks: list[Check]) -> None:
    for key, value in node.items():
        if key == "resourceType":
            continue
        field = _field(model, key)
        _value_checks(value, field, checks)


def _value_checks(value: Any, field: FieldInfo, checks: list[Check]) -> None:
    if isinstance(value, dict):
        _dict_checks(value, _element_model(field), checks)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                _dict_checks(item, _element_model(field), checks)
            elif isinstance(item, list):
                raise KeyError("a list in a list")  # no FHIR element is one; the model said so
            else:
                checks.append(_item_check(field))
    else:
        checks.append(_value_check(field))


@lru_cache(maxsize=4096)
def _field(model: type[BaseModel], key: str) -> FieldInfo:
    fields: dict[str, FieldInfo] = model.model_fields
    for name, field in fields.items():
        if field.alias == key or (name == key and not field.alias):
            return field
    if key in fields:  # populate_by_name: the Python name is accepted too
        return fields[key]
    raise KeyError(key)


@lru_cache(maxsize=4096)
def _element_model(field: FieldInfo) -> type[BaseModel]:
    for candidate in _types_in(field.annotation):
        if isinstance(candidate, type) and issubclass(candidate, FhirBase):
            return typing.cast("type[BaseModel]", candidate.get_model_klass())
    raise KeyError("no element model")


def _types_in(annotation: Any) -> list[Any]:
    found, stack = [], [annotation]
    while stack:
        current = stack.pop()
        found.append(current)
        if typing.get_origin(current) is not typing.Annotated:
            stack.extend(typing.get_args(current))
    return found


@lru_cache(maxsize=4096)
def _value_check(field: FieldInfo) -> Check:
    return _passes(TypeAdapter(_annotated(field.annotation, field)))


@lru_cache(maxsize=4096)
def _item_check(field: FieldInfo) -> Check:
    """A check of one value of a list of primitives (`HumanName.given`): the list's item type."""
    items = [a for a in _types_in(field.annotation) if typing.get_origin(a) is list]
    if not items:
        raise KeyError("not a list")
    return _passes(TypeAdapter(typing.get_args(items[0])[0]))


def _annotated(annotation: Any, field: FieldInfo) -> Any:
    """The field's annotation with the field's own constraints (none in today's models), as the model has it."""
    return typing.Annotated[(annotation, *field.metadata)] if field.metadata else annotation


def _passes(adapter: TypeAdapter[Any]) -> Check:
    def check(value: Any) -> bool:
        try:
            adapter.validate_python(value)
        except (ValidationError, ValueError, TypeError, AttributeError):  # as the model's own validators raise
            return False
        return True

    return check
