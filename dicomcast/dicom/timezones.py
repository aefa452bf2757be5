"""The UTC offset of a local DICOM date and time when the data carries none.

`DicomCastWorker:DefaultTimezone` is either a fixed offset (`+01:00`, `Z`) or an IANA zone name
(`Europe/Berlin`); a zone's offset depends on the day (daylight saving), so it is resolved per
value. One function, used by every reader of DA/TM/DT values (study, series, dose reports).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dicomcast.errors import MappingError

_FIXED_OFFSET = re.compile(r"^(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$")


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError("default time zone is neither an offset like +01:00 nor an IANA zone name") from None


def default_offset(default_timezone: str, day: str, time: str) -> str:
    """`+HH:MM` for a FHIR date `day` and time `time` (`HH:MM:SS[.F]`) without an offset of their own.

    Raises MappingError (not InvalidValueError: the setting is wrong, not the data) for a
    setting that is neither a fixed offset nor a known IANA zone.
    """
    if _FIXED_OFFSET.match(default_timezone):
        return default_timezone
    zone = _zone(default_timezone)
    local = datetime.fromisoformat(f"{day}T{time[:8]}").replace(tzinfo=zone)
    offset = local.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
