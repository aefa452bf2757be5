"""What every command shares: the operator's one-line errors with their exit code, and the settings.

Errors an operator sees are one line each (what, where it came from, what to do), no traceback,
with the exit codes of errors.ExitCode.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from dicomcast.config import LoadedSettings, load_settings
from dicomcast.errors import ConfigError, DicomcastError, ExitCode
from dicomcast.logs import configure_logging, get_logger, json_enabled
from dicomcast.urls import redact_text

F = TypeVar("F", bound=Callable[..., Any])
log = get_logger("dicomcast.cli")


def fail(message: str, code: ExitCode, error: str | None = None) -> NoReturn:
    """The operator's error: one line per problem on stderr, or one JSON line on stdout when logs
    are JSON (Logging:Format), then the exit code."""
    lines = redact_text(message).splitlines() or [redact_text(message)]
    if json_enabled():
        details = {"problems": lines[1:]} if lines[1:] else {}
        log.error(lines[0].rstrip(":"), error_class=error, exit_code=int(code), **details)
    else:
        for line in lines:
            click.echo(f"dicomcast: {line}", err=True)
    exit_with(code)


def exit_with(code: ExitCode) -> NoReturn:
    """The one place a command ends the process with its exit code."""
    sys.exit(int(code))


def fail_on_dicomcast_error(error: DicomcastError) -> NoReturn:
    if isinstance(error, ConfigError):
        fail("configuration error:\n" + "\n".join(error.problems), error.exit_code, type(error).__name__)
    fail(f"{type(error).__name__}: {error}", error.exit_code, type(error).__name__)


def operator_errors(fn: F) -> F:
    """Turn dicomcast's errors into one line per problem and the documented exit code; anything
    else is a bug: logged with its type and stack, exit 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DicomcastError as exc:
            fail_on_dicomcast_error(exc)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            log.exception("unexpected error", error_class=type(exc).__name__)
            exit_with(ExitCode.UNEXPECTED)

    return wrapper  # type: ignore[return-value]


def config_file_of(invocation: click.Context) -> Path | None:
    """The --config file given to the `dicomcast` group, if any."""
    obj = invocation.find_root().obj or {}
    config_file: Path | None = obj.get("config_file")
    return config_file


def settings_of(invocation: click.Context) -> LoadedSettings:
    """The settings, loaded once per command; logging configured from them."""
    obj: dict[str, Any] = invocation.find_root().ensure_object(dict)
    if "loaded" not in obj:
        obj["loaded"] = load_settings(config_file=obj.get("config_file"))
        logging_settings = obj["loaded"].settings.logging
        configure_logging(logging_settings.level, logging_settings.format)
        for warning in obj["loaded"].warnings:
            log.warning("setting", detail=warning)
    loaded: LoadedSettings = obj["loaded"]
    return loaded
