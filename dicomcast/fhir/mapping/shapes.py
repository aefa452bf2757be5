"""Shapes of resources the `fhir.resources` models have accepted, so that the next resource of the
same shape is validated value by value instead of model by model.

What a model checks is of two kinds. The shape: which elements are present, in which lists, nested
how, and the JSON type of each value (unknown elements, missing required ones, a null in a list of
elements, a choice given twice: `fhir_core`'s model validators look at presence, never at values).
And each primitive value against its element's FHIR type (an `id`'s pattern and length, a
`dateTime`'s form, an `unsignedInt`'s range). A resource whose shape equals one the model accepted
is valid exactly when each of its values passes its element's type, and those types are checked
with the very pydantic validators the model uses (a TypeAdapter of the element's annotation).

A list's shape is the set of its items' distinct shapes: the model validates each item of a list
alone, by the same element type, and sets no bound on a list's length. So a study of 1,000
instances has the shape of one of 10 when its instances are alike, and large studies are checked
value by value too.

Dicomcast maps studies by the thousand, all of a few shapes: model by model, most of their CPU went
to validation. A resource of a shape not seen yet, or with a value that fails, is validated by the
model as before, which names what is wrong.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from functools import cached_property, lru_cache
from typing import Any

from fhir_core.types import Code, FhirBase, Oid, Uri
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

Shape = tuple[Any, ...]
Check = Callable[[Any], bool]
# Per process; beyond either, new shapes are validated by the model each time. A remembered shape
# keeps about 150 bytes per place, so what is remembered stays under 16 MB whatever the studies are.
MAX_SHAPES = 2048
MAX_REMEMBERED_PLACES = 100_000
MAX_KNOWN_VALUES = 64  # per code or URI element: values that passed, not checked again


_VOCABULARY = (Code, Uri, Oid)  # Canonical is a Uri


class _RefusedError(Exception):
    """A value failed its check, or an element is not in the model: the model decides."""


def checked_shape(resource: dict[str, Any], model: type[BaseModel]) -> Shape | None:
    """The resource's shape, once every primitive value passes its element's check (the model's
    own field types); None when one does not, or an element is not found in the model."""
    try:
        return _dict_shape(resource, _places_of(model))
    except (_RefusedError, KeyError):
        return None


def sample(resource: dict[str, Any], model: type[BaseModel]) -> dict[str, Any] | None:
    """A resource of `resource`'s shape whose lists hold only the first item of each distinct item
    shape, or None when that is `resource` itself (no list has two items of one shape). Every value
    of it is one of `resource`'s, so the model accepts the sample exactly when it accepts the
    resource's shape: validating it instead spares the model a study's thousand alike instances.
    For a resource whose checked_shape is not None (its values passed; the walk does not raise)."""
    cut = [False]
    out = _dict_sample(resource, _places_of(model), cut)
    return out if cut[0] else None


def places(shape: Shape) -> int:
    """How many primitive places a shape has (what remembering it costs)."""
    count = 0
    for part in shape:
        if isinstance(part, tuple):
            count += places(part)
        elif isinstance(part, type):
            count += 1
    return count


class _Place:
    """One element of a model: its field, and (found when first needed) its checks and the
    places of its element type."""

    def __init__(self, field: FieldInfo) -> None:
        self.field = field
        # Codes and URIs that passed (a few dozen: systems, statuses, SOP classes), by type and value
        # as 1 and true differ to a check; never names, ids or dates, which are PHI.
        self.known: set[tuple[type, Any]] = set()
        self.known_items: set[tuple[type, Any]] = set()

    def passes(self, value: Any) -> bool:
        # _passes_known inlined: a shape check calls this for every primitive of every resource
        key = (type(value), value)
        if key in self.known:
            return True
        if not self.check(value):
            return False
        if self.vocabulary and len(self.known) < MAX_KNOWN_VALUES:
            self.known.add(key)
        return True

    def item_passes(self, item: Any) -> bool:
        return _passes_known(item, self.known_items, self.item_check, self.vocabulary)

    @cached_property
    def vocabulary(self) -> bool:
        """The element is a code or a URI."""
        return any(
            typing.get_origin(t) is typing.Annotated and any(isinstance(m, _VOCABULARY) for m in typing.get_args(t)[1:])
            for t in _types_in(self.field.annotation)
        )

    @cached_property
    def check(self) -> Check:
        return _check_of(_annotated(self.field.annotation, self.field))

    @cached_property
    def item_check(self) -> Check:
        """A check of one value of a list of primitives (`HumanName.given`): the list's item type."""
        items = [a for a in _types_in(self.field.annotation) if typing.get_origin(a) is list]
        if not items:
            raise KeyError("not a list")
        return _check_of(typing.get_args(items[0])[0])

    @cached_property
    def element(self) -> dict[str, _Place]:
        return _places_of(_element_model(self.field))


@lru_cache(maxsize=512)
def _places_of(model: type[BaseModel]) -> dict[str, _Place]:
    """The model's elements by JSON name (the alias, else the Python name: populate_by_name)."""
    places_: dict[str, _Place] = {}
    for name, field in model.model_fields.items():
        places_.setdefault(name, _Place(field))
        if field.alias:
            places_[field.alias] = places_[name] if field.alias == name else _Place(field)
    return places_


def _dict_shape(node: dict[str, Any], places_: dict[str, _Place]) -> Shape:
    parts: list[Any] = []
    for key, value in node.items():
        if key == "resourceType":
            parts.append((key, ("=", value)))
            continue
        place = places_[key]
        if isinstance(value, dict):
            parts.append((key, _dict_shape(value, place.element)))
        elif isinstance(value, list):
            parts.append((key, _list_shape(value, place)))
        elif place.passes(value):
            parts.append((key, type(value)))
        else:
            raise _RefusedError
    return tuple(parts)


def _list_shape(items: list[Any], place: _Place) -> Shape:
    if len(items) == 1:
        return ("[", _item_shape(items[0], place))
    return ("[", *dict.fromkeys(_item_shape(item, place) for item in items))


def _item_shape(item: Any, place: _Place) -> Any:
    if isinstance(item, dict):
        return _dict_shape(item, place.element)
    if isinstance(item, list):
        raise KeyError("a list in a list")  # no FHIR element is one
    if not place.item_passes(item):
        raise _RefusedError
    return type(item)


def _dict_sample(node: dict[str, Any], places_: dict[str, _Place], cut: list[bool]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key != "resourceType" and isinstance(value, dict):
            value = _dict_sample(value, places_[key].element, cut)
        elif key != "resourceType" and isinstance(value, list):
            value = _list_sample(value, places_[key], cut)
        out[key] = value
    return out


def _list_sample(items: list[Any], place: _Place, cut: list[bool]) -> list[Any]:
    kept = items
    if len(items) > 1:
        firsts: dict[Any, Any] = {}
        for item in items:
            firsts.setdefault(_item_shape(item, place), item)  # in order, as _list_shape has them
        if len(firsts) < len(items):
            kept, cut[0] = list(firsts.values()), True
    return [_dict_sample(item, place.element, cut) if isinstance(item, dict) else item for item in kept]


@lru_cache(maxsize=4096)
def _element_model(field: FieldInfo) -> type[BaseModel]:
    for candidate in _types_in(field.annotation):
        # FhirBase is an ABC: a first issubclass per class walked all its subclasses, 27 ms a batch
        if isinstance(candidate, type) and FhirBase in candidate.__mro__:
            element_type = typing.cast("type[FhirBase]", candidate)
            return typing.cast("type[BaseModel]", element_type.get_model_klass())
    raise KeyError("no element model")


def _types_in(annotation: Any) -> list[Any]:
    found, stack = [], [annotation]
    while stack:
        current = stack.pop()
        found.append(current)
        if typing.get_origin(current) is not typing.Annotated:
            stack.extend(typing.get_args(current))
    return found


def _annotated(annotation: Any, field: FieldInfo) -> Any:
    """The field's annotation with the field's own constraints (none in today's models), as the model has it."""
    return typing.Annotated[(annotation, *field.metadata)] if field.metadata else annotation


def _passes_known(value: Any, known: set[tuple[type, Any]], check: Check, vocabulary: bool) -> bool:
    key = (type(value), value)
    if key in known:
        return True
    if not check(value):
        return False
    if vocabulary and len(known) < MAX_KNOWN_VALUES:
        known.add(key)
    return True


def _check_of(annotation: Any) -> Check:
    """The check of a type, shared by the elements of that type (a resource's 23 primitive
    elements are of 6 types; building an adapter costs about 70 us)."""
    try:
        return _shared_check(annotation)
    except TypeError:  # an annotation that cannot be a cache key (unhashable metadata): its own
        return _passes(TypeAdapter(annotation))


@lru_cache(maxsize=256)
def _shared_check(annotation: Any) -> Check:
    return _passes(TypeAdapter(annotation))


def _passes(adapter: TypeAdapter[Any]) -> Check:
    validate = adapter.validator.validate_python  # what TypeAdapter.validate_python calls, without its wrapper

    def check(value: Any) -> bool:
        try:
            validate(value)
        except (ValidationError, ValueError, TypeError, AttributeError):  # as the model's own validators raise
            return False
        return True

    return check
