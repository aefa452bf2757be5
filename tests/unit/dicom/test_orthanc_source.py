"""The Orthanc source against a mocked Orthanc (httpx.MockTransport): malformed changes and bodies
that can never be decoded cost one failure each, never the page."""

from __future__ import annotations

import json
from typing import Any

import httpx

from dicomcast.config.settings import DicomWebSettings
from dicomcast.dicom.models import UNKNOWN_SEQUENCE
from dicomcast.dicom.orthanc import OrthancSource
from dicomcast.http import make_client

ROOT = "http://orthanc.test"


def _id(n: int) -> str:
    return "-".join([f"{n:08x}"] * 5)


class FakeOrthanc:
    """Changes 1..n, one instance each, in one study and series; `deep` changes are nested too deeply."""

    def __init__(self, count: int, deep: set[int]) -> None:
        self.changes = [
            {"Seq": n, "ChangeType": "NewInstance", "ID": _id(n), "Date": "20260101T000000"}
            for n in range(1, count + 1)
        ]
        self.deep = deep

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, query = request.url.path, request.url.params
        if path == "/changes":
            since, limit = int(query["since"]), int(query["limit"])
            numbers = [n for n in range(1, len(self.changes) + 1) if n > since][:limit]  # Orthanc's own Seq
            texts = [_nested(1200) if n in self.deep else json.dumps(self.changes[n - 1]) for n in numbers]
            last = numbers[-1] if numbers else since
            body = (
                f'{{"Changes": [{",".join(texts)}], "Done": {json.dumps(last >= len(self.changes))}, "Last": {last}}}'
            )
            return httpx.Response(200, content=body.encode(), headers={"Content-Type": "application/json"})
        if path.startswith("/instances/"):
            n = int(path.rsplit("/", 1)[1][:8], 16)
            return httpx.Response(
                200, json={"ParentSeries": _id(10_000), "MainDicomTags": {"SOPInstanceUID": f"1.2.3.{n}"}}
            )
        if path.startswith("/series/"):
            return httpx.Response(
                200, json={"ParentStudy": _id(20_000), "MainDicomTags": {"SeriesInstanceUID": "1.2.3"}}
            )
        if path.startswith("/studies/"):
            return httpx.Response(200, json={"MainDicomTags": {"StudyInstanceUID": "1.2"}})
        if path.endswith("/metadata"):
            items = [{"00080018": {"vr": "UI", "Value": [f"1.2.3.{n}"]}} for n in range(1, len(self.changes) + 1)]
            return httpx.Response(200, json=items)
        return httpx.Response(404)


def _nested(depth: int) -> str:
    return '{"Seq": 0, "x": ' + "[" * depth + "]" * depth + "}"


def _source(orthanc: FakeOrthanc) -> OrthancSource:
    client = make_client(ROOT, transport=httpx.MockTransport(orthanc.handle))
    return OrthancSource(DicomWebSettings(endpoint=ROOT), client, batch_size=100)


def _read_all(source: OrthancSource) -> tuple[list[int], list[Any]]:
    entries, unreadable, cursor = [], [], None
    for _ in range(100):
        page = source.read_page(cursor)
        entries += [e.sequence for e in page.entries]
        unreadable += list(page.unreadable)
        cursor = page.next_cursor
        if page.caught_up:
            return entries, unreadable
    raise AssertionError("never caught up")


def test_a_change_that_cannot_be_decoded_is_isolated_and_passed() -> None:
    entries, unreadable = _read_all(_source(FakeOrthanc(8, deep={5})))
    assert entries == [1, 2, 3, 4, 6, 7, 8]
    assert [u.sequence for u in unreadable] == [UNKNOWN_SEQUENCE]


def test_malformed_changes_are_one_failure_each() -> None:
    orthanc = FakeOrthanc(5, deep=set())
    orthanc.changes[1]["Seq"] = "two"  # type: ignore[assignment]
    orthanc.changes[3]["ID"] = "../../tools/reset"
    entries, unreadable = _read_all(_source(orthanc))
    assert entries == [1, 3, 5]
    assert sorted(u.sequence for u in unreadable) == [UNKNOWN_SEQUENCE, 4]
