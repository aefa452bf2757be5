"""Logging: one JSON line per unit of work to stdout (human-readable on a terminal).

Never log PHI (patient names, ids, birth dates) or secrets: log UIDs, sequences, counts, timings.
httpx and the Azure SDK log full URLs (identifier searches carry patient ids): they are held at WARNING.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from dicomcast.urls import redact_text

QUIET_LOGGERS = ("httpx", "httpcore", "azure", "urllib3", "msal", "apscheduler", "alembic")


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_urls,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def redact_urls(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """Every URL in a log line loses its user info and secret query values (urls.redact_url),
    whatever put it there: a setting, an error message, a library."""
    return {key: redact_text(value) if isinstance(value, str) else value for key, value in event.items()}


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
