"""Property tests: hostile DICOM JSON never makes the mapping raise (MappingError included)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicomcast.dicom import tags
from dicomcast.dicom.models import ChangeAction, ChangeEntry
from dicomcast.fhir.mapping import FhirVersion, MappingOptions, StudyInput, map_study, patient_key, patient_keys
from tests.unit.mapping.builders import CONTEXT, STUDY, dose_sr, instance, multi_series_study

MAPPED_TAGS = [value for name, value in vars(tags).items() if name.isupper() and isinstance(value, str)]
VRS = ["AE", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "SQ", "TM", "UI", "UN", "OB", "XX"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(alphabet="0123456789.+-: ^=", max_size=30),
    st.sampled_from(["", " ", "\x00", "\ud800", "x" * 20_000, "山田^太郎", "19000231", "2400", "+9999"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from([*MAPPED_TAGS, "vr", "Value", "Alphabetic", "Ideographic"]), inner, max_size=4),
    ),
    max_leaves=20,
)
elements = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"vr": st.sampled_from(VRS)}, optional={"Value": json_values, "InlineBinary": st.text(max_size=8)}
    ),
    st.builds(lambda vr, v: {"vr": vr, "Value": v}, st.sampled_from(VRS), st.lists(json_values, max_size=3)),
)
mutations = st.dictionaries(st.sampled_from(MAPPED_TAGS), elements, max_size=8)
OPTIONS = [
    MappingOptions(patient_system_id="urn:oid:2.25.1"),
    MappingOptions(is_issuer_id_used=True, enforce_validation=True, fhir_version=FhirVersion.R5),
]


def _map(datasets: list[dict[str, Any]], options: MappingOptions) -> None:
    entries = [
        ChangeEntry(
            sequence=i, action=ChangeAction.CREATE, study_uid=STUDY, series_uid="", sop_instance_uid="", metadata=d
        )
        for i, d in enumerate(datasets, start=1)
    ]
    # Stricter than the contract (which allows MappingError): with valid options, bad data must
    # become failures and warnings, and whatever is produced must validate.
    out = map_study(StudyInput(STUDY, None, entries, None, {}), CONTEXT, options)
    for failure in out.failures:
        assert failure.reason
    patient_key(datasets[0], options)
    patient_keys(datasets[0], options)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations, st.sampled_from([0, 1]), st.sampled_from(["plain", "rich", "dose"]))
def test_mutated_instances_never_crash(mutation: dict[str, Any], which: int, base: str) -> None:
    dataset = {"plain": instance(1, 1), "rich": multi_series_study()[0], "dose": dose_sr()}[base]
    dataset.update(mutation)
    _map([dataset], OPTIONS[which])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(MAPPED_TAGS), elements, max_size=12), st.sampled_from([0, 1]))
def test_arbitrary_datasets_never_crash(dataset: dict[str, Any], which: int) -> None:
    _map([dataset], OPTIONS[which])


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30), st.text(max_size=30))
def test_hostile_names_and_ids_map_or_fail_cleanly(name: str, patient_id: str) -> None:
    dataset = instance(
        1,
        1,
        extra={
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": name}]},
            "00100020": {"vr": "LO", "Value": [patient_id]},
        },
    )
    _map([dataset], OPTIONS[0])
