"""The bad-values policy, in one place.

An invalid optional value is left out and becomes a `MappingWarning` (tag, sequence, what is
wrong), unless `EnforceValidationOfTagValues` is on: then it fails the entry like an invalid
required value does. Messages never carry values (PHI).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from dicomcast.dicom.dicomjson import InvalidValueError
from dicomcast.errors import MappingError
from dicomcast.fhir.mapping.types import MappingWarning

T = TypeVar("T")


class Issues:
    """Collects the warnings of one entry; `enforce` turns invalid values into entry failures."""

    def __init__(self, sequence: int, enforce: bool) -> None:
        self.sequence = sequence
        self.enforce = enforce
        self.warnings: list[MappingWarning] = []

    def invalid(self, tag: str | None, message: str) -> None:
        """An invalid optional value: a warning, or the entry's failure when enforcing."""
        if self.enforce:
            raise MappingError(message, tag=tag)
        self.warnings.append(MappingWarning(self.sequence, tag, message))

    def note(self, tag: str | None, message: str) -> None:
        """Something the operator should know that is not the data's fault (configuration)."""
        self.warnings.append(MappingWarning(self.sequence, tag, message))

    def optional_list(self, read: Callable[[], list[T]]) -> list[T]:
        """Runs a reader of an optional multi-valued element; an invalid value yields []."""
        try:
            return read()
        except InvalidValueError as error:
            self.invalid(error.tag, error.reason)
            return []

    def optional(self, read: Callable[[], T], default: T) -> T:
        """Runs a reader of an optional value; an invalid value yields `default`."""
        try:
            return read()
        except InvalidValueError as error:
            self.invalid(error.tag, error.reason)
            return default


def required(read: Callable[[], T | None], tag: str, what: str) -> T:
    """Runs a reader of a required value: missing or invalid fails the entry."""
    try:
        value = read()
    except InvalidValueError as error:
        raise MappingError(f"invalid {what}: {error.reason}", tag=tag) from None
    if value is None:
        raise MappingError(f"missing {what}", tag=tag)
    return value
