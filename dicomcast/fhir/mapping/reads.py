"""Reads that repeat across a study's instances, done once per study.

The instances of a study carry the same patient and study attributes, and those of a series the
same series attributes; reading them again for every instance was most of a large study's mapping
CPU. A part of `instance.extract` runs on a dataset that notes every element it reads. The next
instance reuses the part's result when each of those elements is the same there: equal to Python,
and, where the recorded elements hold numbers, equal as marshal bytes too, so that 1, 1.0 and true
stay different as they are to the readers (Python's == tells strings, None, lists and objects
apart exactly, but not numbers; the readers never depend on the order of an object's keys, which
== ignores). The part's warnings are given again under the new entry's sequence; a part that fails
is not kept. A part is recorded the second time it is read, so that a study of one instance pays
nothing for this.
"""

from __future__ import annotations

import marshal
import operator
import typing
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from dicomcast.dicom.dicomjson import DicomJson
from dicomcast.fhir.mapping.issues import Issues
from dicomcast.fhir.mapping.types import MappingWarning

T = TypeVar("T")
_ABSENT = ()  # stands for a missing element: no JSON value is a tuple
_MARSHAL_VERSION = 2  # without back-references, so equal values give equal bytes


def _bytes(value: Any) -> bytes | None:
    """The value as bytes; None when it is not plain JSON data (then never reused)."""
    try:
        return marshal.dumps(value, _MARSHAL_VERSION)
    except ValueError:
        return None


class _Recording(dict[str, Any]):
    """The dataset, noting each element read (the readers go through `get`, dicomjson.values)."""

    def __init__(self, data: DicomJson) -> None:
        super().__init__(data)
        self.read: dict[str, Any] = {}
        self.unusable = False  # iterated: which elements matter is unknown

    def get(self, key: str, default: Any = None) -> Any:
        value = dict.get(self, key, _ABSENT)
        self.read[key] = value
        return default if value is _ABSENT else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _ABSENT) is not _ABSENT

    def __iter__(self) -> Iterator[str]:
        self.unusable = True
        return super().__iter__()

    def __len__(self) -> int:
        self.unusable = True
        return super().__len__()

    def keys(self) -> Any:
        self.unusable = True
        return super().keys()

    def values(self) -> Any:
        self.unusable = True
        return super().values()

    def items(self) -> Any:
        self.unusable = True
        return super().items()


def _has_number(value: Any) -> bool:
    """Whether a JSON value holds a number (or true/false) anywhere: where == is not exact."""
    if isinstance(value, int | float):  # bool is an int
        return True
    if isinstance(value, dict):
        return any(_has_number(k) or _has_number(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_number(item) for item in value)
    return False


Getter = Callable[[DicomJson], Any]


def _getter(tags: tuple[str, ...]) -> Getter:
    """The values of `tags` in a dataset (itemgetter, in C: one tag's value alone, else a tuple);
    KeyError when one is missing."""
    return operator.itemgetter(*tags) if tags else lambda _: ()


@dataclass(frozen=True)
class _Kept:
    present: Getter  # the elements read that were there
    absent: frozenset[str]  # the elements read that were not
    values: Any  # what `present` gave: a copy (marshal's), not the dataset's
    numbers: bytes | None  # the same as marshal bytes, where they hold numbers (else None)
    result: Any
    warnings: tuple[tuple[str | None, str, str], ...]

    def matches(self, data: DicomJson) -> bool:
        """Each element read is the same in `data` (in C but for these lines: this runs per instance)."""
        if not data.keys().isdisjoint(self.absent):
            return False
        try:
            current = self.present(data)
        except KeyError:
            return False
        return current == self.values and (self.numbers is None or _bytes(current) == self.numbers)


def _kept(read: dict[str, Any], result: Any, warnings: list[MappingWarning]) -> _Kept | None:
    """What to keep of a part's read (`read`: each element read, _ABSENT where missing); None when
    its values are not plain JSON data."""
    present = tuple(tag for tag, value in read.items() if value is not _ABSENT)
    getter = _getter(present)
    read_bytes = _bytes(getter(read))
    if read_bytes is None:
        return None
    # A copy of what was read, from the bytes made just now (never bytes from outside).
    values = marshal.loads(read_bytes)  # noqa: S302
    return _Kept(
        present=getter,
        absent=frozenset(read) - frozenset(present),
        values=values,
        numbers=read_bytes if _has_number(values) else None,
        result=result,
        warnings=tuple((w.tag, w.message, w.kind) for w in warnings),
    )


class StudyReads:
    """The parts read so far in one study (one `map_study` call), by part and arguments."""

    def __init__(self) -> None:
        self._kept: dict[Hashable, _Kept | None] = {}  # None: read once, not recorded

    def part(self, key: Hashable, data: DicomJson, issues: Issues, read: Callable[[DicomJson, Issues], T]) -> T:
        """`read(data, issues)`, or its result for an earlier instance whose elements it read are equal."""
        if key not in self._kept:  # the first time: read plainly (most studies have one instance)
            self._kept[key] = None
            return read(data, issues)
        kept = self._kept[key]
        if kept is not None and kept.matches(data):
            issues.warnings += [MappingWarning(issues.sequence, tag, text, kind) for tag, text, kind in kept.warnings]
            return typing.cast("T", kept.result)
        recording = _Recording(data)
        own = Issues(issues.sequence, issues.enforce)
        result = read(recording, own)
        issues.warnings += own.warnings
        if not recording.unusable:
            self._kept[key] = _kept(recording.read, result, own.warnings)
        return result
