"""`map_study`: one study's entries of a page + what FHIR holds -> what to write.

Pure: no I/O, clock, randomness or logging. Every entry is applied in feed order; an entry that
cannot be mapped becomes an EntryFailure and the others still apply. Output resources are left
out when they equal what FHIR holds (ignoring `meta`), so a replay writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from dicomcast.dicom.models import ChangeAction, ChangeEntry, ChangeState, DicomJson
from dicomcast.errors import MappingError
from dicomcast.fhir.mapping import dose, legacy
from dicomcast.fhir.mapping.identity import PatientBook, PatientIdentityConflictError
from dicomcast.fhir.mapping.ids import resource_id
from dicomcast.fhir.mapping.instance import InstanceFacts, extract
from dicomcast.fhir.mapping.issues import Issues
from dicomcast.fhir.mapping.reads import StudyReads
from dicomcast.fhir.mapping.study import StudyMerger, without_meta
from dicomcast.fhir.mapping.types import (
    EntryFailure,
    FailureClass,
    MappingOptions,
    MappingWarning,
    Resource,
    SourceContext,
    StudyInput,
    StudyOutput,
)
from dicomcast.fhir.mapping.validate import validated


@dataclass
class _DoseReport:
    observations: list[Resource]
    patient_reference: str


def map_study(study: StudyInput, context: SourceContext, options: MappingOptions) -> StudyOutput:
    """Applies `study.entries` to `study.existing_study`; see the module and `study.py` rules.

    Raises MappingError only for a configuration the mapping cannot use (default time zone) or
    a produced resource that fails validation; bad data becomes failures and warnings.
    """
    output = StudyOutput()
    new_id = resource_id("ImagingStudy", study.partition or "", study.study_uid)
    existing = legacy.adopted_study(study.existing_study, context, options.fhir_version)  # DICOM Cast's: ours now
    merger = StudyMerger(study.study_uid, new_id, existing, context, options.fhir_version)
    book = PatientBook(study.existing_patients)
    reports: dict[str, _DoseReport | None] = {}
    reads = StudyReads()
    for entry in study.entries:
        if entry.action is ChangeAction.DELETE:
            merger.remove(entry.series_uid, entry.sop_instance_uid)
            reports[entry.sop_instance_uid] = None
            continue
        if entry.metadata is None or entry.state is ChangeState.DELETED:
            continue  # nothing to map: the instance is gone or its metadata was not read
        facts = _extract(entry, entry.metadata, options, output, reads)
        if facts is None:
            continue
        try:
            subject = book.apply(facts.patient, entry)
        except PatientIdentityConflictError as conflict:
            output.failures.append(EntryFailure(entry, FailureClass.DICOM, str(conflict)))
            continue
        merger.add(facts, subject)
        if facts.is_dose_report and options.generate_observations:
            issues = Issues(entry.sequence, enforce=False)
            found = dose.read_dose_report(entry.metadata, facts.sop_instance_uid, facts.accession, options, issues)
            output.warnings.extend(issues.warnings)
            reports[facts.sop_instance_uid] = _DoseReport(found, subject)
    _finish_study(study, merger, context, output, options)
    output.warnings.extend(book.warnings)
    output.patients = [validated(p, options.fhir_version) for p in book.changed()]
    _finish_observations(study, merger, reports, output, options)
    return output


def _extract(
    entry: ChangeEntry, metadata: DicomJson, options: MappingOptions, output: StudyOutput, reads: StudyReads
) -> InstanceFacts | None:
    issues = Issues(entry.sequence, options.enforce_validation)
    try:
        facts = extract(entry, metadata, options, issues, reads)
    except MappingError as error:
        output.failures.append(EntryFailure(entry, FailureClass.DICOM, str(error)))
        return None
    output.warnings.extend(issues.warnings)
    return facts


def _finish_study(
    study: StudyInput, merger: StudyMerger, context: SourceContext, output: StudyOutput, options: MappingOptions
) -> None:
    existing = study.existing_study
    if merger.series_count == 0:
        if existing is None:
            return  # nothing of this study exists nor remains: nothing to write
        if merger.removed and (merger.study.get("meta") or {}).get("source") == context.source_uri:
            output.delete_imaging_study = existing
            return
    rendered = merger.render()
    output.warnings.extend(merger.warnings)
    if without_meta(rendered) != without_meta(existing):
        output.imaging_study = validated(rendered, options.fhir_version)


def _finish_observations(
    study: StudyInput,
    merger: StudyMerger,
    reports: dict[str, _DoseReport | None],
    output: StudyOutput,
    options: MappingOptions,
) -> None:
    existing = {o.get("id"): o for o in study.existing_observations}
    study_reference = f"ImagingStudy/{merger.study['id']}"
    produced: dict[str, Resource] = {}
    for sop_uid, report in reports.items():
        owned = [o for o in study.existing_observations if dose.owned_by(o, sop_uid)]
        fresh = _complete(report, study_reference, study.study_uid) if report else []
        fresh_ids = {o["id"] for o in fresh}
        output.delete_observations.extend(o for o in owned if o.get("id") not in fresh_ids)
        for observation in fresh:
            produced.setdefault(observation["id"], observation)
    _replace_dicom_cast_dose(study, merger, reports, output)
    for observation_id, observation in produced.items():
        previous = existing.get(observation_id)
        if previous is not None and previous.get("meta"):
            observation["meta"] = previous["meta"]
        if without_meta(observation) != without_meta(previous):
            output.observations.append(validated(observation, options.fhir_version))


def _replace_dicom_cast_dose(
    study: StudyInput, merger: StudyMerger, reports: dict[str, _DoseReport | None], output: StudyOutput
) -> None:
    """DICOM Cast's dose Observations of this study give way to dicomcast's (legacy.py)."""
    if not reports:
        return
    remaining = [
        {**series, "instance": list(merger.instances[uid].values())}
        for uid, series in merger.series.items()
        if uid not in merger.emptied
    ]
    srs = legacy.sr_instances(remaining)
    replaced = legacy.dose_observations_to_replace(study.existing_observations, study.study_uid, srs, reports)
    output.delete_observations.extend(replaced)
    kept = sum(1 for o in study.existing_observations if legacy.is_dicom_cast_dose(o, study.study_uid))
    if kept and not replaced and any(reports.values()):
        sequence = study.entries[-1].sequence if study.entries else 0
        output.warnings.append(
            MappingWarning(
                sequence,
                None,
                f"{kept} DICOM Cast dose Observation(s) of this study kept: it holds several dose-capable SR "
                "instances and DICOM Cast's Observations do not say which one they came from",
            )
        )


def _complete(report: _DoseReport, study_reference: str, study_uid: str) -> list[Resource]:
    """Subject, partOf (reference plus the Study Instance UID, as the dose IG has it) and, for the
    summary, focus: known only once the Patient and ImagingStudy ids are."""
    study_identifier = dose.study_identifier(study_uid)
    for observation in report.observations:
        observation["subject"] = {"reference": report.patient_reference}
        observation["partOf"] = [{"reference": study_reference, "identifier": study_identifier}]
        if observation is report.observations[0]:
            observation["focus"] = [{"reference": study_reference}]
    return report.observations
