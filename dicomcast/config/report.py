"""`dicomcast config`: every effective setting, its value and where it came from.

Passwords, client secrets and the store's connection string are shown as `***`; user info in
URLs and secret-looking query values (SAS `sig`, `code`, `token`, ...) are masked too. Unknown and ignored names (never values) from the loader follow as warnings.
"""

from __future__ import annotations

from datetime import timedelta
from enum import Enum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr

from dicomcast.config import keys
from dicomcast.config.loader import LoadedSettings
from dicomcast.urls import redact_url

MASK = "***"
NOT_SET = "(not set)"


def render_config(loaded: LoadedSettings) -> list[str]:
    rows = [(":".join(path), _shown(path, value), loaded.origin(path)) for path, value in _effective(loaded)]
    width = max((len(key) for key, _, _ in rows), default=0)
    lines = [f"{key.ljust(width)}  {value}  [{origin}]" for key, value, origin in rows]
    lines.extend(f"warning: {warning}" for warning in loaded.warnings)
    return lines


def _effective(loaded: LoadedSettings) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) for every leaf; list items and dict entries by their actual index or key."""
    found: list[tuple[tuple[str, ...], Any]] = []
    for pattern in keys.leaf_paths():
        found.extend(_expand(loaded.settings, pattern, ()))
    return found


def _expand(node: Any, pattern: tuple[str, ...], done: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    if not pattern:
        return [(done, node)]
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        items = node.items() if isinstance(node, dict) else enumerate(node or [])
        return [hit for key, item in items for hit in _expand(item, rest, (*done, str(key)))]
    return _expand(_child(node, head), rest, (*done, head))


def _child(model: Any, alias: str) -> Any:
    if not isinstance(model, BaseModel):
        return None
    for name, info in type(model).model_fields.items():
        if (info.alias or name) == alias:
            return getattr(model, name)
    return None


def _shown(path: tuple[str, ...], value: Any) -> str:
    if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()):
        return NOT_SET
    if keys.is_secret_path(path) or isinstance(value, SecretStr):
        return MASK
    return _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, timedelta):
        return _timespan(value)
    if isinstance(value, list):
        return ",".join(_text(v) for v in value) if value else "(empty)"
    if isinstance(value, str):
        return _mask_url(value) if value else '""'
    return str(value)


def _timespan(value: timedelta) -> str:
    """DICOM Cast's TimeSpan form: `00:01:00`, `1.00:00:00`, fractions kept."""
    total = value.total_seconds()
    days, rest = divmod(int(total), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    fraction = f"{total - int(total):.3f}".lstrip("0") if total != int(total) else ""
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}{fraction}"
    return f"{days}.{text}" if days else text


def _mask_url(value: str) -> str:
    """`https://user:pw@host/x?sig=s` -> `https://***@host/x?sig=***` (user info and secret-looking
    query values, as `urls.redact_url` decides); other strings unchanged."""
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        return value
    shown = urlsplit(redact_url(value))
    if "@" in parts.netloc:
        shown = shown._replace(netloc=f"{MASK}@{shown.netloc}")
    return urlunsplit(shown)
