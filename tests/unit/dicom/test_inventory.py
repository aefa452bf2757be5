"""dicom/inventory.py: QIDO-RS paging over untrusted answers, and the entries reconciliation makes."""

from __future__ import annotations

from typing import Any

import pytest

from dicomcast.dicom.inventory import (
    QIDO_LIMIT,
    RECONCILE_SEQUENCE,
    Inventory,
    StudyFilter,
    StudyRef,
    creation,
    deletion,
)
from dicomcast.dicom.models import ChangeAction
from dicomcast.errors import TransientUpstreamError


def _study(uid: str) -> dict[str, Any]:
    return {"0020000D": {"vr": "UI", "Value": [uid]}}


class FakeSource:
    name = "fake"

    def __init__(self, answers: dict[str, Any], ignore_offset: bool = False) -> None:
        self.answers, self.ignore_offset, self.calls = answers, ignore_offset, []

    def dicomweb_json(self, path: str, params: dict[str, str] | None = None, partition: str | None = None) -> Any:
        self.calls.append((path, dict(params or {}), partition))
        body = self.answers.get(f"{partition}:{path}")
        if not isinstance(body, list):
            return body
        offset = 0 if self.ignore_offset else int((params or {}).get("offset", 0))
        page = body[offset : offset + int((params or {}).get("limit", QIDO_LIMIT))]
        return page or None  # 204

    def partitions_in_use(self) -> list[str | None]:
        return sorted({key.split(":", 1)[0] for key in self.answers}, key=str)  # type: ignore[return-value]

    def endpoint_address(self, partition: str | None) -> str:
        return "http://dicom.test"


def test_studies_are_paged_by_200_across_partitions_and_sorted() -> None:
    many = [_study(f"1.{n}") for n in range(450)]
    source = FakeSource({"a:/studies": many, "b:/studies": [_study("9.9"), {"no": "uid"}, "junk"]})
    refs = Inventory(source).studies(StudyFilter(study_uid="1.5"))
    assert len(refs) == 451 and refs == sorted(refs) and refs[-1] == StudyRef("b", "9.9")
    offsets = [c[1]["offset"] for c in source.calls if c[2] == "a"]
    assert offsets == ["0", "200", "400"]
    assert all(c[1]["0020000D"] == "1.5" and c[1]["limit"] == "200" for c in source.calls)


def test_a_server_that_ignores_offset_ends_the_listing() -> None:
    source = FakeSource({"None:/studies": [_study(f"1.{n}") for n in range(200)]}, ignore_offset=True)
    source.partitions_in_use = lambda: [None]  # type: ignore[method-assign]
    assert len(Inventory(source).studies(StudyFilter())) == 200
    assert len(source.calls) == 2


def test_a_body_that_is_not_an_array_is_never_an_empty_listing() -> None:
    source = FakeSource({"None:/studies/1.2/instances": {"error": "html?"}})
    with pytest.raises(TransientUpstreamError):
        Inventory(source).instances(StudyRef("", "1.2"))


def test_date_filters_become_a_study_date_range() -> None:
    from datetime import date

    assert StudyFilter(date_from=date(2025, 1, 2)).qido_params() == {"00080020": "20250102-"}
    assert StudyFilter(date_to=date(2025, 3, 4)).qido_params() == {"00080020": "-20250304"}


def _instance(study: str, series: str | None, sop: str, **more: Any) -> dict[str, Any]:
    item = {"0020000D": {"vr": "UI", "Value": [study]}, "00080018": {"vr": "UI", "Value": [sop]}, **more}
    if series is not None:
        item["0020000E"] = {"vr": "UI", "Value": [series]}
    return item


def test_sop_instance_uids_are_paged_and_count_any_item_that_names_one() -> None:
    listed = [_instance("1.2", "1.2.1", f"1.2.1.{n}") for n in range(250)]
    listed += [
        _instance("1.2", None, "1.2.9.1"),  # no series UID: still present (never a guessed deletion)
        _instance("7.7", "7.7.1", "7.7.1.1"),  # another study's instance: not this study's
        {"00080018": {"vr": "UI", "Value": [42]}},  # unreadable: ignored, not an error
    ]
    source = FakeSource({"None:/studies/1.2/instances": listed})
    uids = Inventory(source).sop_instance_uids(StudyRef("", "1.2"))
    assert uids == {f"1.2.1.{n}" for n in range(250)} | {"1.2.9.1"}
    assert [c[1]["offset"] for c in source.calls] == ["0", "200"]
    assert "includefield" not in source.calls[0][1]  # the deletion pass needs the UIDs only


def test_a_study_the_server_no_longer_has_lists_no_instance() -> None:
    source = FakeSource({"None:/studies/1.2/instances": None})  # an explicit 404
    inventory = Inventory(source)
    assert inventory.sop_instance_uids(StudyRef("", "1.2")) == set()
    assert inventory.instances(StudyRef("", "1.2")) == [] and inventory.requests == 2


def test_instances_read_their_elements_as_the_mapping_does() -> None:
    number = {"00200013": {"vr": "IS", "Value": [7]}, "00080060": {"vr": "CS", "Value": ["CT "]}}
    negative = {"00200013": {"vr": "IS", "Value": ["-3"]}}
    listed = [_instance("1.2", "1.2.1", "1.2.1.1", **number), _instance("1.2", "1.2.1", "1.2.1.2", **negative)]
    found = Inventory(FakeSource({"None:/studies/1.2/instances": listed})).instances(StudyRef("", "1.2"))
    assert [(i.sop_instance_uid, i.number, i.modality) for i in found] == [
        ("1.2.1.1", 7, "CT"),
        ("1.2.1.2", None, None),
    ]


def test_entries_made_by_reconciliation_carry_the_study_ref() -> None:
    ref = StudyRef("p1", "1.2")
    created = creation(ref, _instance("1.2", "1.2.1", "1.2.1.1"))
    deleted = deletion(ref, "1.2.1", "1.2.1.2")
    assert (created.action, created.series_uid, created.sop_instance_uid, created.partition) == (
        ChangeAction.CREATE,
        "1.2.1",
        "1.2.1.1",
        "p1",
    )
    assert (deleted.action, deleted.study_uid, deleted.partition, deleted.sequence) == (
        ChangeAction.DELETE,
        "1.2",
        "p1",
        RECONCILE_SEQUENCE,
    )
