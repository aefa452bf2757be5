"""`dicomcast reconcile`: compare FHIR with each DICOM source, report the differences, repair them.

Exit codes: 0 FHIR matches (or, without --dry-run, everything was repaired); 3 differences found by
a dry run, or some left unrepaired (failures recorded); 69 a server or the store unavailable, or the
run interrupted (run it again: it resumes); 77/78 as for every command.
"""

from __future__ import annotations

import threading
from datetime import date

import click

from dicomcast.cli.common import exit_with, fail, operator_errors, settings_of
from dicomcast.errors import ConfigError, ExitCode


@click.command()
@click.option("--dry-run", is_flag=True, help="Change nothing; report every difference (exit 3 if any).")
@click.option("--source", "source_name", help="Only this source (its name, e.g. orthanc:http://host:8042).")
@click.option("--study", "study_uid", help="Only this Study Instance UID.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), help="Only studies with StudyDate on or after.")
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]), help="Only studies with StudyDate on or before.")
@click.option("--full", is_flag=True, help="Map every study's metadata (finds any content drift; slower).")
@click.pass_context
def reconcile(
    invocation: click.Context,
    dry_run: bool,
    source_name: str | None,
    study_uid: str | None,
    since: object,
    until: object,
    full: bool,
) -> None:
    """Make FHIR match the DICOM server(s): missing, gone, drifted and duplicated ImagingStudies."""
    operator_errors(_reconcile)(invocation, dry_run, source_name, study_uid, _day(since), _day(until), full)


def _day(value: object) -> date | None:
    return value.date() if hasattr(value, "date") else None  # click.DateTime gives a datetime


def _reconcile(
    invocation: click.Context,
    dry_run: bool,
    source_name: str | None,
    study_uid: str | None,
    since: date | None,
    until: date | None,
    full: bool,
) -> None:
    from dicomcast.dicom.inventory import StudyFilter
    from dicomcast.reconcile.run import RunOptions, reconcile_source
    from dicomcast.worker.build import build
    from dicomcast.worker.runner import install_signal_handlers

    settings = settings_of(invocation).settings
    stop_event = threading.Event()
    install_signal_handlers(stop_event)
    parts = build(settings, stop_event)
    try:
        named = list(zip(settings.effective_sources(), parts.contexts, strict=True))
        chosen = [c for s, c in named if source_name in (None, s.name, c.source.name, s.dicom_web.endpoint)]
        if not chosen:
            names = ", ".join(c.source.name for c in parts.contexts)
            raise ConfigError([f"--source {source_name}: no such source (configured: {names})"])
        options = RunOptions(dry_run, StudyFilter(study_uid, since, until), full)
        reports = [reconcile_source(c, options) for c in chosen]
    finally:
        parts.close()
    for report in reports:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(report.kinds.items())) or "none"
        click.echo(
            f"{report.source}: {report.checked} studies checked, {report.differing} differing ({kinds}); "
            f"{report.studies_written} written, {report.duplicates_deleted} duplicates deleted, "
            f"{report.failures} failures; requests per study: DICOM {report.summary()['dicom_requests_per_study']}, "
            f"FHIR {report.summary()['fhir_requests_per_study']}"
        )
    if any(r.interrupted for r in reports):
        fail("reconcile interrupted; run the same command again to resume", ExitCode.UNAVAILABLE)
    if dry_run and any(r.differing for r in reports):
        exit_with(ExitCode.DIFFERENCES)
    if not dry_run and any(r.unresolved for r in reports):
        fail("some differences were not repaired: see `dicomcast failures list`", ExitCode.DIFFERENCES)
