"""`dicomcast run [--once]`, `dicomcast migrate` and `dicomcast config`."""

from __future__ import annotations

import threading

import click

from dicomcast.cli.common import config_file_of, exit_with, log, operator_errors, settings_of
from dicomcast.config import Settings, load_settings
from dicomcast.errors import ExitCode


@click.command()
@click.option("--once", is_flag=True, help="Sync until caught up, then exit 0.")
@click.pass_context
@operator_errors
def run(invocation: click.Context, once: bool) -> None:
    """Sync continuously (or --once).

    `run` waits for unreachable or refusing dependencies (worker/availability.py) and exits only on
    invalid configuration (78); `run --once` exits 69/77 when a dependency fails."""
    from dicomcast import telemetry
    from dicomcast.store.durability import warn_if_ephemeral_store
    from dicomcast.worker import hooks
    from dicomcast.worker.runner import install_signal_handlers

    settings = settings_of(invocation).settings
    if telemetry.configure(settings.application_insights):
        log.info("telemetry to Azure Monitor (Application Insights)")
    hooks.reached("run-start")
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
    from dicomcast.worker.build import build, tune_collector
    from dicomcast.worker.runner import make_workers, run_once
    from dicomcast.worker.state import WorkerState

    parts = build(settings, stop_event)
    tune_collector()
    try:
        log.info("fhir server", fhir_version=parts.capabilities.fhir_version, writes=parts.capabilities.version.value)
        workers = make_workers(parts.contexts, WorkerState(), settings.worker.lease_duration)
        reports = run_once(workers, reconcile_interval=settings.worker.reconcile_interval)
        for report in reports:
            log.info("caught up" if report.ok else "cycle failed", **vars(report))
        if not all(r.ok for r in reports):
            exit_with(ExitCode.UNAVAILABLE)
    finally:
        parts.close()


def _run_continuously(settings: Settings, stop_event: threading.Event) -> None:
    from dicomcast.worker.availability import Availability, StopRequested
    from dicomcast.worker.build import build_when_available, tune_collector
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
    tune_collector()
    try:
        log.info("fhir server", fhir_version=parts.capabilities.fhir_version, writes=parts.capabilities.version.value)
        workers = make_workers(parts.contexts, state, settings.worker.lease_duration, availability=availability)
        attach(server, settings.worker, parts)
        Runner(workers, settings.worker, stop_event).run()
    finally:
        parts.close()


@click.command()
@click.pass_context
@operator_errors
def migrate(invocation: click.Context) -> None:
    """Create or upgrade the store's schema (Store:ConnectionString)."""
    from dicomcast.store import make_engine
    from dicomcast.store import migrate as upgrade

    settings = settings_of(invocation).settings
    upgrade(make_engine(settings.store.connection_string))
    click.echo("store migrated to the newest schema")


@click.command("config")
@click.pass_context
@operator_errors
def config_command(invocation: click.Context) -> None:
    """Print the effective settings and where each came from (secrets as ***)."""
    from dicomcast.config.report import render_config

    for line in render_config(load_settings(config_file=config_file_of(invocation))):
        click.echo(line)
