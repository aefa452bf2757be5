"""The `dicomcast` command group: run | migrate | config | check | status | checkpoint | failures |
map | reconcile. Each command lives in its own module of this package and is registered here, so no
command module imports another."""

from __future__ import annotations

from pathlib import Path

import click

from dicomcast.cli.checkpoint import checkpoint
from dicomcast.cli.failures import failures
from dicomcast.cli.map import map_command
from dicomcast.cli.ops import check, status
from dicomcast.cli.reconcile import reconcile
from dicomcast.cli.run import config_command, migrate, run
from dicomcast.logs import configure_from_environment


@click.group()
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML or JSON settings file (under the environment).",
)
@click.version_option(package_name="dicomcast")
@click.pass_context
def main(invocation: click.Context, config_file: Path | None) -> None:
    """Keeps a FHIR server in step with a DICOM server's change feed."""
    configure_from_environment()  # the settings may not load: their error is logged in this format
    invocation.ensure_object(dict)["config_file"] = config_file


for _command in (run, migrate, config_command, checkpoint, map_command, failures, check, status, reconcile):
    main.add_command(_command)
