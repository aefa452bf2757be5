"""The operator's commands `dicomcast check` and `dicomcast status`."""

from __future__ import annotations

import json
from typing import Any

import click

from dicomcast.cli.common import config_file_of, exit_with, fail
from dicomcast.config import load_settings
from dicomcast.errors import ConfigError, DicomcastError
from dicomcast.urls import redact_text


@click.command()
@click.pass_context
def check(invocation: click.Context) -> None:
    """Check every dependency, one line each; exit 0 only if all pass.

    Exit codes: 78 settings invalid, 77 a credential refused, 69 a server or the store unreachable
    (the first failing line's). Usable as a container liveness or readiness command.
    """
    from dicomcast.checks import Status, exit_code, run_checks

    lines = run_checks(config_file=config_file_of(invocation))
    for line in lines:
        click.echo(line.render())
    failures = sum(1 for line in lines if line.status is Status.FAIL)
    click.echo(f"check: {failures} of {len(lines)} failed" if failures else "check: all passed", err=True)
    exit_with(exit_code(lines))


@click.command()
@click.option("--compact", is_flag=True, help="One line of JSON instead of indented.")
@click.pass_context
def status(invocation: click.Context, compact: bool) -> None:
    """Checkpoints, lease holders and open failures per class, as JSON, read from the store.

    Works while the worker runs elsewhere; never creates or migrates the store.
    """
    from dicomcast.store import Store
    from dicomcast.store.db import store_label

    try:
        settings = load_settings(config_file=config_file_of(invocation)).settings
        connection_string = settings.store.connection_string
        store = Store.open_existing(connection_string)
        try:
            report: dict[str, Any] = {"store": store_label(connection_string), **store.status()}
        finally:
            store.close()
    except ConfigError as exc:
        fail("configuration error:\n" + "\n".join(exc.problems), exc.exit_code)
    except DicomcastError as exc:
        fail(f"{type(exc).__name__}: {exc}", exc.exit_code)
    click.echo(redact_text(json.dumps(report, indent=None if compact else 2, sort_keys=False)))
