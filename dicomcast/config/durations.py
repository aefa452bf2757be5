"""Parsing of durations as DICOM Cast wrote them (TimeSpan `00:01:00`) and as people write them."""

from __future__ import annotations

import re
from datetime import timedelta

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")
_UNIT = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> timedelta:
    """Accept `00:00:10` (.NET TimeSpan, optional `d.` days), `10s`, `5m`, `500ms` or `10` (seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r}")
    text = value.strip()
    span = _TIMESPAN.match(text)
    if span:
        days, hours, minutes, seconds, fraction = span.groups()
        total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
        return timedelta(seconds=total + float(f"0.{fraction}" if fraction else 0))
    unit = _UNIT.match(text)
    if unit:
        return timedelta(seconds=float(unit.group(1)) * _SECONDS[(unit.group(2) or "s").lower()])
    raise ValueError(f"not a duration: {value!r} (use 00:00:10, 10s, 5m or 10)")
