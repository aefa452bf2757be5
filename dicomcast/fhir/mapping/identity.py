"""Which Patient an instance belongs to. Two issuers are two people; nothing else merges.

A Patient is PatientID qualified by its issuer (IssuerOfPatientID and its qualifiers). dicomcast
records the issuer on the Patient's identifier (`patient.read_issuer`), so the rule survives a
lost store and holds also when `Patient:IsIssuerIdUsed` is off:

1. The Patient found under the DICOM Cast-compatible key (`PatientSystemId|PatientID`) is linked
   when its recorded issuer is this instance's, or when it records none (a DICOM Cast or EHR
   Patient: adopted, and its issuer recorded from then on).
2. Else the Patient under the issuer-qualified key (`patient.qualified_key`) is linked, or made
   when there is none: a second issuer's person gets a Patient of its own, deterministically
   named, so replays and restarts find the same one.
3. With `IsIssuerIdUsed`, a Patient DICOM Cast wrote under the raw IssuerOfPatientID as system is
   adopted when the key finds nothing, and gets the key as well.
4. When even the issuer-qualified key belongs to another issuer (two issuers mapped to one system),
   the entry fails as a patient identity conflict naming the setting that resolves it.

Other Patient IDs never match (`patient.identity_keys`). A later study fills empty demographics
but never overwrites a different gender or birth date (a warning and a metric); Azure `update`
actions, which carry corrections, do.
"""

from __future__ import annotations

from collections.abc import Mapping

from dicomcast.dicom import tags
from dicomcast.dicom.models import ChangeAction, ChangeEntry
from dicomcast.errors import MappingError
from dicomcast.fhir.mapping import patient as patients
from dicomcast.fhir.mapping.study import without_meta
from dicomcast.fhir.mapping.types import MappingWarning, PatientKey, Resource

DEMOGRAPHICS_CONFLICT = "patient-demographics-conflict"
ISSUER_SPLIT = "patient-issuer-split"
_DEMOGRAPHIC_TAGS = {"gender": tags.PATIENT_SEX, "birthDate": tags.PATIENT_BIRTH_DATE}
CONFLICT_REASON = (
    "patient identity conflict: the PatientID's Patients belong to other issuers; give this "
    "issuer a system of its own with Patient__IssuerSystems__<IssuerOfPatientID>=<URI> "
    "(Key Vault secret Patient--IssuerSystems--<IssuerOfPatientID>), then run `dicomcast failures retry`"
)


class PatientIdentityConflictError(MappingError):
    """The instance's issuer matches none of the Patients its keys find, and none can be made."""


class PatientBook:
    """The Patients a study's entries touch: FHIR's copies, merged with each instance's facts."""

    def __init__(self, existing: Mapping[PatientKey, Resource]) -> None:
        self.original: dict[str, Resource] = {str(p["id"]): p for p in existing.values() if p.get("id")}
        self.current: dict[str, Resource] = dict(self.original)
        self.ids: dict[PatientKey, str] = {k: str(p["id"]) for k, p in existing.items() if p.get("id")}
        self.touched: dict[str, None] = {}
        self.last: dict[PatientKey, tuple[patients.PatientFacts, bool, str]] = {}
        self.warnings: list[MappingWarning] = []

    def find(self, key: PatientKey | None) -> Resource | None:
        found = self.ids.get(key) if key is not None else None
        return self.current.get(found) if found else None

    def apply(self, facts: patients.PatientFacts, entry: ChangeEntry) -> str:
        """Links the instance to its Patient (merging its facts); returns the reference.
        Raises PatientIdentityConflictError (see the module's rule 4)."""
        correct = entry.action is ChangeAction.UPDATE
        cached = self.last.get(facts.key)
        # `is` first: a read reused across the study's instances (reads.py) hands back the same facts
        if cached and (cached[0] is facts or cached[0] == facts) and cached[1] == correct:
            return cached[2]  # instances of a study repeat the same patient
        keys = self._resolve(facts)
        existing = self.find(keys[0])
        patient, kept = patients.merge_patient(existing, facts, keys, correct)
        patient_id = str(patient["id"])
        self.current[patient_id] = patient
        self.touched[patient_id] = None
        for key in patients.identity_keys(patient):
            self.ids.setdefault(key, patient_id)
        self._warn(facts, entry, keys[0], existing is None, kept)
        reference = f"Patient/{patient_id}"
        self.last[facts.key] = (facts, correct, reference)
        return reference

    def _resolve(self, facts: patients.PatientFacts) -> list[PatientKey]:
        """The keys to link under: the first finds (or names) the Patient; see the module."""
        primary = self.find(facts.key)
        if primary is not None and self._same_issuer(primary, facts.key, facts):
            return [facts.key]
        qualified_key = facts.qualified if facts.qualified != facts.key else None
        qualified = self.find(qualified_key)
        if qualified_key is not None and qualified is not None and self._same_issuer(qualified, qualified_key, facts):
            return [qualified_key]
        if primary is None:
            legacy = self.find(facts.dicom_cast)
            if (
                facts.dicom_cast is not None
                and legacy is not None
                and self._same_issuer(legacy, facts.dicom_cast, facts)
            ):
                return [facts.dicom_cast, facts.key]
            return [facts.key]
        if qualified_key is not None and qualified is None:
            return [qualified_key]
        raise PatientIdentityConflictError(CONFLICT_REASON, tag=tags.ISSUER_OF_PATIENT_ID)

    @staticmethod
    def _same_issuer(patient: Resource, key: PatientKey, facts: patients.PatientFacts) -> bool:
        recorded = patients.recorded_issuer(patient, key)
        return recorded is patients.UNKNOWN or recorded == facts.issuer

    def _warn(
        self, facts: patients.PatientFacts, entry: ChangeEntry, key: PatientKey, made: bool, kept: list[str]
    ) -> None:
        where = f"study {entry.study_uid}, instance {entry.sop_instance_uid}"
        if made and key != facts.key:
            message = f"PatientID belongs to another issuer's Patient: a separate Patient was made ({where})"
            self.warnings.append(MappingWarning(entry.sequence, tags.ISSUER_OF_PATIENT_ID, message, ISSUER_SPLIT))
        for element in kept:
            message = f"Patient {element} differs from the one FHIR holds; not overwritten ({where})"
            warning = MappingWarning(entry.sequence, _DEMOGRAPHIC_TAGS[element], message, DEMOGRAPHICS_CONFLICT)
            self.warnings.append(warning)

    def changed(self) -> list[Resource]:
        return [
            self.current[i] for i in self.touched if without_meta(self.current[i]) != without_meta(self.original.get(i))
        ]
