"""Setting names: matching incoming keys to the model, case-insensitively, and naming them back.

A key is a colon path of aliases (`DicomWeb:Authentication:Enabled`). Environment variables spell
it with `__`, Key Vault secrets with `--`. Aliases from DICOM Cast's guide (`DICOM:Endpoint`) and
keys DICOM Cast had that mean nothing here (.NET's per-category log levels) are known here too.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from dicomcast.config.settings import Settings

# Names other deployments use for our keys (lower-cased prefix -> canonical prefix).
ALIASES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("dicom",): ("DicomWeb",),  # the DICOM Cast how-to guide names the secret DICOM--Endpoint
}
# DICOM Cast settings that have no meaning here (lower-cased path prefix -> why); accepted and
# named in one start-up line.
IGNORED_PREFIXES: dict[tuple[str, ...], str] = {
    ("logging", "applicationinsights"): ".NET logging-provider settings; Logging:Level applies to every log",
    ("logging", "console"): ".NET logging-provider settings; Logging:Format chooses the log form",
    ("logging", "eventsource"): ".NET logging-provider settings",
    ("logging", "debug"): ".NET logging-provider settings",
}
_DOTNET_LOG_CATEGORY = ".NET per-category log level; only Logging:LogLevel:Default is used (as Logging:Level)"


@dataclass(frozen=True)
class Match:
    """Result of matching an incoming key: the canonical path, or why it is not a setting."""

    path: tuple[str, ...] | None
    ignored_reason: str | None = None


def _inner_model(annotation: Any) -> tuple[str, type[BaseModel] | None]:
    """Classify a field type: ('model', cls), ('list', item model), ('dict', None) or ('leaf', None)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _inner_model(args[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model", annotation
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return "list", args[0]
    if origin is dict:
        return "dict", None
    return "leaf", None


def _field_by_alias(model: type[BaseModel], name: str) -> tuple[str, Any] | None:
    lowered = name.lower()
    for field_name, info in model.model_fields.items():
        alias = info.alias or field_name
        if alias.lower() == lowered:
            return alias, info.annotation
    return None


def match(parts: list[str], model: type[BaseModel] = Settings) -> Match:
    """Match a key given as path segments against the model, case-insensitively."""
    if not parts:
        return Match(None)
    reason = ignored_reason(parts)
    if reason:
        return Match(None, reason)
    for alias, target in ALIASES.items():
        if tuple(p.lower() for p in parts[: len(alias)]) == alias:
            parts = [*target, *parts[len(alias) :]]
    path = _walk(model, parts)
    return Match(tuple(path) if path else None)


def ignored_reason(parts: list[str]) -> str | None:
    """Why a DICOM Cast key has no meaning here, or None when it is not one of those."""
    lowered = tuple(part.lower() for part in parts)
    for prefix, reason in IGNORED_PREFIXES.items():
        if lowered[: len(prefix)] == prefix:
            return reason
    if lowered[:2] == ("logging", "loglevel") and lowered[2:] != ("default",) and len(lowered) > 2:
        return _DOTNET_LOG_CATEGORY
    return None


def _walk(model: type[BaseModel], parts: list[str]) -> list[str] | None:
    found = _field_by_alias(model, parts[0])
    if found is None:
        return None
    alias, annotation = found
    kind, inner = _inner_model(annotation)
    rest = parts[1:]
    if kind == "leaf":
        return [alias] if not rest else None
    if kind == "dict":
        return [alias, *rest] if len(rest) <= 1 else None
    if kind == "model" and inner is not None:
        if not rest:
            return [alias]
        tail = _walk(inner, rest)
        return [alias, *tail] if tail else None
    if kind == "list" and inner is not None:
        if not rest:
            return [alias]
        if not rest[0].isdigit():
            return None
        tail = _walk(inner, rest[1:]) if rest[1:] else []
        return [alias, rest[0], *tail] if tail is not None else None
    return None


def is_section(name: str) -> bool:
    """Whether a first path segment names one of our sections (or an alias / ignored one)."""
    lowered = name.lower()
    if any(prefix[0] == lowered for prefix in IGNORED_PREFIXES) or (lowered,) in ALIASES:
        return True
    return _field_by_alias(Settings, name) is not None


def env_name(path: tuple[str, ...] | list[str]) -> str:
    return "__".join(path)


def secret_name(path: tuple[str, ...] | list[str]) -> str:
    return "--".join(path)


def leaf_paths(model: type[BaseModel] = Settings, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every settable leaf key of the model (lists and dicts shown with a `*` segment)."""
    for field_name, info in model.model_fields.items():
        alias = info.alias or field_name
        kind, inner = _inner_model(info.annotation)
        if kind == "model" and inner is not None:
            yield from leaf_paths(inner, (*prefix, alias))
        elif kind == "list" and inner is not None:
            yield from leaf_paths(inner, (*prefix, alias, "*"))
        elif kind == "dict":
            yield (*prefix, alias, "*")
        else:
            yield (*prefix, alias)


def is_secret_path(path: tuple[str, ...] | list[str]) -> bool:
    """Keys whose values are never shown (passwords, client secrets, connection strings)."""
    last = path[-1].lower() if path else ""
    return last in {"password", "clientsecret", "connectionstring", "certificate", "certificatepassword"} or (
        last == "instrumentationkey"
    )
