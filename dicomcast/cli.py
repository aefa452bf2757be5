"""The `dicomcast` command: run | run --once | migrate | config | check | status | checkpoint | map | reconcile.

Errors an operator sees are one line each (what, where it came from, what to do), no traceback,
with the exit codes of errors.ExitCode.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from dicomcast.config import LoadedSettings, Settings, load_settings
from dicomcast.errors import ConfigError, DicomcastError, ExitCode
from dicomcast.logs import configure_from_environment, configure_logging, get_logger, json_enabled
from dicomcast.urls import redact_text

F = TypeVar("F", bound=Callable[..., Any])
log = get_logger("dicomcast.cli")


def fail(message: str, code: ExitCode, error: str | None = None) -> None:
    """The operator's error: one line per problem on stderr, or one JSON line on stdout when logs
    are JSON (Logging:Format), then the exit code."""
    lines = redact_text(message).splitlines() or [redact_text(message)]
    if json_enabled():
        details = {"problems": lines[1:]} if lines[1:] else {}
        log.error(lines[0].rstrip(":"), error_class=error, exit_code=int(code), **details)
    else:
        for line in lines:
            click.echo(f"dicomcast: {line}", err=True)
    sys.exit(int(code))


def operator_errors(fn: F) -> F:
    """Turn dicomcast's errors into one line per problem and the documented exit code; anything
    else is a bug: logged with its type and stack, exit 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            fail("configuration error:\n" + "\n".join(exc.problems), exc.exit_code, type(exc).__name__)
        except DicomcastError as exc:
            fail(f"{type(exc).__name__}: {exc}", exc.exit_code, type(exc).__name__)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            log.exception("unexpected error", error_class=type(exc).__name__)
            sys.exit(int(ExitCode.UNEXPECTED))
        return None

    return wrapper  # type: ignore[return-value]


def settings_of(ctx: click.Context) -> LoadedSettings:
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "loaded" not in obj:
        obj["loaded"] = load_settings(config_file=obj.get("config_file"))
        logging_settings = obj["loaded"].settings.logging
        configure_logging(logging_settings.level, logging_settings.format)
        for warning in obj["loaded"].warnings:
            log.warning("setting", detail=warning)
    loaded: LoadedSettings = obj["loaded"]
    return loaded


@click.group()
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML or JSON settings file (under the environment).",
)
@click.version_option(package_name="dicomcast")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None) -> None:
    """Keeps a FHIR server in step with a DICOM server's change feed."""
    configure_from_environment()  # the settings may not load: their error is logged in this format
    ctx.ensure_object(dict)["config_file"] = config_file


@main.command()
@click.option("--once", is_flag=True, help="Sync until caught up, then exit 0.")
@click.pass_context
@operator_errors
def run(ctx: click.Context, once: bool) -> None:
    """Sync continuously (or --once).

    `run` waits for unreachable or refusing dependencies (worker/availability.py) and exits only on
    invalid configuration (78); `run --once` exits 69/77 when a dependency fails."""
    from dicomcast import telemetry
    from dicomcast.store.durability import warn_if_ephemeral_store
    from dicomcast.worker import faults
    from dicomcast.worker.runner import install_signal_handlers

    settings = settings_of(ctx).settings
    if telemetry.configure(settings.application_insights):
        log.info("telemetry to Azure Monitor (Application Insights)")
    faults.unexpected_at_start()  # off unless a test sets DICOMCAST_FAULT_UNEXPECTED
    warn_if_ephemeral_store(settings.store.connection_string)
    stop_event = threading.Event()
    install_signal_handlers(stop_event)
    try:
        if once:
            _run_once(settings, stop_event)
        else:
            _run_continuously(settings, stop_event)
    finally:
        telemetry.flush()  # spans of a short `run --once` are exported before it exits


def _run_once(settings: Settings, stop_event: threading.Event) -> None:
    from dicomcast.worker.build import build
    from dicomcast.worker.runner import make_workers, run_once
    from dicomcast.worker.state import WorkerState

    parts = build(settings, stop_event)
    try:
        log.info("fhir server", fhir_version=parts.capabilities.fhir_version, writes=parts.capabilities.version.value)
        workers = make_workers(parts.contexts, WorkerState(), settings.worker.lease_duration)
        reports = run_once(workers, reconcile_interval=settings.worker.reconcile_interval)
        for report in reports:
            log.info("caught up" if report.ok else "cycle failed", **vars(report))
        if not all(r.ok for r in reports):
            sys.exit(int(ExitCode.UNAVAILABLE))
    finally:
        parts.close()


def _run_continuously(settings: Settings, stop_event: threading.Event) -> None:
    from dicomcast.worker.availability import Availability, StopRequested
    from dicomcast.worker.build import build_when_available
    from dicomcast.worker.health import attach, start_http_server_if_configured
    from dicomcast.worker.runner import Runner, make_workers
    from dicomcast.worker.state import WorkerState

    state, availability = WorkerState(), Availability()
    server = start_http_server_if_configured(settings.worker, state, availability=availability)
    try:
        parts = build_when_available(settings, stop_event, availability)
    except StopRequested:
        log.info("stopped while waiting for dependencies")
        return
    try:
        log.info("fhir server", fhir_version=parts.capabilities.fhir_version, writes=parts.capabilities.version.value)
        workers = make_workers(parts.contexts, state, settings.worker.lease_duration, availability=availability)
        attach(server, settings.worker, parts)
        Runner(workers, settings.worker, stop_event).run()
    finally:
        parts.close()


@main.command()
@click.pass_context
@operator_errors
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the store's schema (Store:ConnectionString)."""
    from dicomcast.store import make_engine
    from dicomcast.store import migrate as upgrade

    settings = settings_of(ctx).settings
    upgrade(make_engine(settings.store.connection_string))
    click.echo("store migrated to the newest schema")


@main.command("config")
@click.pass_context
@operator_errors
def config_command(ctx: click.Context) -> None:
    """Print the effective settings and where each came from (secrets as ***)."""
    from dicomcast.config.report import render_config

    for line in render_config(load_settings(config_file=ctx.obj.get("config_file"))):
        click.echo(line)


@main.group()
def checkpoint() -> None:
    """See or move a source's cursor."""


@checkpoint.command("show")
@click.pass_context
@operator_errors
def checkpoint_show(ctx: click.Context) -> None:
    from dicomcast.worker.build import open_store

    for row in open_store(settings_of(ctx).settings).checkpoints():
        click.echo(f"{redact_text(row.source)}\t{row.cursor}\t{row.updated_at.isoformat()}")  # old rows too


@checkpoint.command("set")
@click.argument("source")
@click.argument("cursor")
@click.pass_context
@operator_errors
def checkpoint_set(ctx: click.Context, source: str, cursor: str) -> None:
    """Move SOURCE's cursor to CURSOR (`0` or `none` replays from the start; `latest` jumps to the
    feed's current end, skipping everything in it)."""
    from dicomcast.worker.build import open_store

    settings = settings_of(ctx).settings
    store = open_store(settings)
    before = store.read_checkpoint(source)
    if cursor.lower() == "latest":
        from dicomcast.cli_checkpoint import latest_cursor_of

        cursor = latest_cursor_of(settings, source) or "none"
    store.set_checkpoint(source, None if cursor.lower() in ("0", "none", "") else cursor)
    log.warning("checkpoint moved by operator", source=source, before=before, after=cursor)
    click.echo(f"{source}: {before} -> {cursor}")


@checkpoint.command("import-dicomcast")
@click.argument("source", required=False)
@click.pass_context
@operator_errors
def checkpoint_import_dicomcast(ctx: click.Context, source: str | None) -> None:
    """Set SOURCE's cursor from DICOM Cast's SyncedSequence in its Table Storage (TableStore:*
    settings; read only). SOURCE defaults to the single configured source."""
    from dicomcast.cli_checkpoint import import_dicomcast
    from dicomcast.worker.build import open_store

    settings = settings_of(ctx).settings
    store = open_store(settings)
    name, cursor, sequence = import_dicomcast(settings, source)
    before = store.read_checkpoint(name)
    store.set_checkpoint(name, cursor)
    log.warning(
        "checkpoint imported from DICOM Cast", source=name, synced_sequence=sequence, before=before, after=cursor
    )
    click.echo(f"{name}: {before} -> {cursor} (DICOM Cast SyncedSequence {sequence})")


@main.command("map")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--r5", is_flag=True, help="Write FHIR R5 instead of R4.")
@click.pass_context
@operator_errors
def map_command(ctx: click.Context, files: tuple[Path, ...], r5: bool) -> None:
    """Print the FHIR resources dicomcast would write for DICOM files (Part 10 or DICOM JSON).

    No server is needed. Warnings and entries that would fail go to stderr (exit 65 if any fail)."""
    from dicomcast.fhir.mapping.types import FhirVersion
    from dicomcast.mapcmd import map_paths_with_issues
    from dicomcast.worker.build import mapping_options

    loaded = _settings_or_defaults(ctx)
    options = mapping_options(loaded, FhirVersion.R5 if r5 else FhirVersion.R4)
    endpoint = (loaded.dicom_web.endpoint or "").rstrip("/")
    result = map_paths_with_issues(list(files), options, *([endpoint] if endpoint else []))
    click.echo(json.dumps(result.resources, indent=2, ensure_ascii=False))
    for warning in result.warnings:
        click.echo(f"warning: sequence {warning.sequence} tag {warning.tag}: {warning.message}", err=True)
    for failure in result.failures:
        click.echo(f"failure: {failure.entry.describe()}: {failure.reason}", err=True)
    if result.failures:
        sys.exit(65)


def _settings_or_defaults(ctx: click.Context) -> Settings:
    """`map` needs no server: it uses the settings when they load, the defaults otherwise."""
    return settings_of(ctx).settings


from dicomcast.cli_failures import failures  # noqa: E402

main.add_command(failures)

from dicomcast.cli_ops import check, status  # noqa: E402
from dicomcast.cli_reconcile import reconcile  # noqa: E402

main.add_command(check)
main.add_command(status)
main.add_command(reconcile)
