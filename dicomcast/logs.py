"""Logging: one JSON line per unit of work to stdout (human-readable on a terminal).

One style: structlog renders everything. The standard library's loggers (httpx, the Azure SDK,
APScheduler, Alembic, Python warnings, uncaught exceptions in threads) go through the same
processors to the same stream, so with `Logging:Format=json` every line on stdout is JSON.
Exceptions are rendered as their type, message and stack frames (file, line, function), never the
frames' local variables (they may hold PHI or secrets).

Never log PHI (patient names, ids, birth dates) or secrets: log UIDs, sequences, counts, timings.
httpx and the Azure SDK log full URLs (identifier searches carry patient ids): they are held at WARNING.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping, MutableMapping
from types import TracebackType
from typing import Any, NoReturn

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from dicomcast.urls import redact_text

QUIET_LOGGERS = ("httpx", "httpcore", "azure", "urllib3", "msal", "apscheduler", "alembic")
FORMATS = ("auto", "json", "console")
_json_chosen = False
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


def uses_json(fmt: str) -> bool:
    return fmt == "json" or (fmt not in ("console",) and not sys.stdout.isatty())


def json_enabled() -> bool:
    """Whether logs (and the operator error line) are JSON, as last configured."""
    return _json_chosen


def _numeric(level: str | int) -> int:
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    return numeric if isinstance(numeric, int) else logging.INFO


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_urls,
    ]


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    global _json_chosen
    _json_chosen = uses_json(fmt.lower())
    renderer: Any
    if _json_chosen:
        exceptions = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        renderer = [exceptions, structlog.processors.JSONRenderer()]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=False)]
    formatter = _Formatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_numeric(level))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, _numeric(level)))
    logging.captureWarnings(True)  # warnings.warn from libraries: the `py.warnings` logger
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            _handed_over,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_exception


def configure_from_environment(environ: Mapping[str, str] | None = None) -> None:
    """Before the settings are loaded (they may fail to load): Logging__Level / Logging__Format
    from the environment (names case-insensitive), so even a configuration error is logged in the
    chosen format."""
    env = {k.lower(): v for k, v in (environ if environ is not None else os.environ).items()}
    fmt = env.get("logging__format", "auto").strip().lower()
    configure_logging(env.get("logging__level", "INFO").strip() or "INFO", fmt if fmt in FORMATS else "auto")


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    get_logger("dicomcast").error("unexpected error", error_class=kind.__name__, exc_info=(kind, exc, tb))


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    get_logger("dicomcast").error(
        "unexpected error in a thread",
        thread=args.thread.name if args.thread else None,
        error_class=args.exc_type.__name__,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def redact_urls(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """Every URL in a log line loses its user info and secret query values (urls.redact_url),
    whatever put it there: a setting, an error message, a library. In place: each line's event
    dict is its own, and most of its values hold no URL."""
    for key, value in event.items():
        if isinstance(value, str) and "://" in value:
            event[key] = redact_text(value)
    return event


def _handed_over(logger: logging.Logger, method: str, event: MutableMapping[str, Any]) -> NoReturn:
    """The last processor: the event's stdlib record, handed to the handlers as `Logger.info` would
    (after `filter_by_level`), but without looking up its caller, a walk up the stack per line that
    no dicomcast format shows. The record is what `ProcessorFormatter.wrap_for_formatter` makes."""
    level = _LEVELS.get(method, logging.INFO)
    extra = {"_logger": logger, "_name": method}
    logger.handle(logger.makeRecord(logger.name, level, "(unknown file)", 0, event, (), None, extra=extra))
    raise structlog.DropEvent


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """ProcessorFormatter, without its copy of each dicomcast record: the copy keeps what the
    formatter clears (exception, stack) for other handlers, and these records carry neither (the
    event dict does, and is copied). Library records take ProcessorFormatter's own way."""

    def format(self, record: logging.LogRecord) -> str:
        logger = getattr(record, "_logger", None)
        if logger is None or not isinstance(record.msg, dict):
            return super().format(record)
        event: Any = {**record.msg, "_record": record, "_from_structlog": True}
        for processor in self.processors:
            event = processor(logger, record._name, event)  # type: ignore[attr-defined]
        return str(event)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
