"""`dicomcast map FILES...`: the FHIR resources dicomcast would write, without any server."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dicomcast.cli.common import exit_with, operator_errors, settings_of
from dicomcast.errors import ExitCode


@click.command("map")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--r5", is_flag=True, help="Write FHIR R5 instead of R4.")
@click.pass_context
@operator_errors
def map_command(invocation: click.Context, files: tuple[Path, ...], r5: bool) -> None:
    """Print the FHIR resources dicomcast would write for DICOM files (Part 10 or DICOM JSON).

    No server is needed. Warnings and entries that would fail go to stderr (exit 65 if any fail)."""
    from dicomcast.fhir.mapping.types import FhirVersion
    from dicomcast.mapcmd import map_paths_with_issues
    from dicomcast.worker.build import mapping_options

    loaded = settings_of(invocation).settings
    options = mapping_options(loaded, FhirVersion.R5 if r5 else FhirVersion.R4)
    endpoint = (loaded.dicom_web.endpoint or "").rstrip("/")
    result = map_paths_with_issues(list(files), options, *([endpoint] if endpoint else []))
    click.echo(json.dumps(result.resources, indent=2, ensure_ascii=False))
    for warning in result.warnings:
        click.echo(f"warning: sequence {warning.sequence} tag {warning.tag}: {warning.message}", err=True)
    for failure in result.failures:
        click.echo(f"failure: {failure.entry.describe()}: {failure.reason}", err=True)
    if result.failures:
        exit_with(ExitCode.DATA)
