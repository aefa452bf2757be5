"""The Azure source against the loopback Azure DICOM test server (tests/servers/azure_dicom.py)."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import httpx
import pytest

from dicomcast.config.settings import DicomWebSettings
from dicomcast.dicom.azure import AzureChangeFeedSource
from dicomcast.dicom.models import ChangeAction, ChangeEntry, ChangeSource, ChangeState, Page, mapped_elements
from dicomcast.errors import AuthError, ServerNotSupportedError, TransientUpstreamError
from tests.servers.azure_dicom import AzureDicomServer, ManualClock, generate_studies, sample_instances
from tests.servers.azure_dicom_data import uids

pytestmark = pytest.mark.integration

PATIENT_ID = "00100020"
PATIENT_NAME = "00100010"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def server(clock: ManualClock) -> Iterator[AzureDicomServer]:
    with AzureDicomServer(clock=clock) as running:
        yield running


@pytest.fixture(autouse=True)
def _sources_closed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every source a test opens is closed after it: its pooled connections are not left to garbage
    collection (a ResourceWarning in a later test, wherever the collector runs)."""
    opened: list[AzureChangeFeedSource] = []
    original = AzureChangeFeedSource.__init__

    def init(self: AzureChangeFeedSource, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(AzureChangeFeedSource, "__init__", init)
    yield
    for source in opened:
        source.close()


def make_source(server: AzureDicomServer, version: int, clock: ManualClock, **options: Any) -> AzureChangeFeedSource:
    settings = DicomWebSettings(endpoint=f"{server.url}/v{version}", **options.pop("settings", {}))
    return AzureChangeFeedSource(settings, clock=clock, **options)


def read_until_caught_up(source: AzureChangeFeedSource, cursor: str | None = None) -> tuple[list[Page], str | None]:
    pages = []
    for _ in range(2000):
        page = source.read_page(cursor)
        pages.append(page)
        cursor = page.next_cursor
        if page.caught_up:
            return pages, cursor
    raise AssertionError("never caught up")


def entries_of(pages: list[Page]) -> list[ChangeEntry]:
    return [entry for page in pages for entry in page.entries]


def value(entry: ChangeEntry, tag: str) -> Any:
    assert entry.metadata is not None
    return entry.metadata[tag]["Value"][0]


@pytest.mark.parametrize("version", [1, 2])
def test_create_update_delete_lifecycle(server: AzureDicomServer, clock: ManualClock, version: int) -> None:
    instances = generate_studies(1, 3, seed=7)
    study, series, first_sop = uids(instances[0])
    source = make_source(server, version, clock, batch_size=2)

    server.store_all(instances)
    server.update(study, {"PatientName": "Renamed^Pat", "PatientID": "NEW-ID"})
    clock.advance(10)
    pages, cursor = read_until_caught_up(source)
    entries = entries_of(pages)
    assert [(e.sequence, e.action, e.state) for e in entries] == [
        (1, ChangeAction.CREATE, ChangeState.REPLACED),
        (2, ChangeAction.CREATE, ChangeState.REPLACED),
        (3, ChangeAction.CREATE, ChangeState.REPLACED),
        (4, ChangeAction.UPDATE, ChangeState.CURRENT),
        (5, ChangeAction.UPDATE, ChangeState.CURRENT),
        (6, ChangeAction.UPDATE, ChangeState.CURRENT),
    ]
    # metadata is the current version's, also on the old create rows
    assert {value(e, PATIENT_ID) for e in entries} == {"NEW-ID"}
    assert {value(e, PATIENT_NAME)["Alphabetic"] for e in entries} == {"Renamed^Pat"}

    server.delete_instance(study, series, first_sop)
    clock.advance(10)
    pages, cursor = read_until_caught_up(source, cursor)
    assert [(e.sequence, e.action, e.sop_instance_uid, e.metadata) for e in entries_of(pages)] == [
        (7, ChangeAction.DELETE, first_sop, None)
    ]

    server.delete_study(study)  # fans out: one delete entry per remaining instance
    clock.advance(10)
    pages, cursor = read_until_caught_up(source, cursor)
    deletes = entries_of(pages)
    assert [(e.sequence, e.action, e.state) for e in deletes] == [
        (8, ChangeAction.DELETE, ChangeState.DELETED),
        (9, ChangeAction.DELETE, ChangeState.DELETED),
    ]
    assert {e.sop_instance_uid for e in deletes} == {uids(i)[2] for i in instances[1:]}

    # replay from 0: creates and updates of deleted instances are skipped, deletes remain
    replay = read_until_caught_up(make_source(server, version, clock))[0]
    assert [e.sequence for e in entries_of(replay)] == [7, 8, 9]
    assert sorted(e.sequence for p in replay for e, _ in p.skipped) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("gap", [1, 1000])
def test_v1_gaps_skip_no_entry(server: AzureDicomServer, clock: ManualClock, gap: int) -> None:
    instances = generate_studies(2, 3, seed=gap)
    server.store_all(instances[:3])
    server.skip_sequences(gap)
    server.store_all(instances[3:])
    source = make_source(server, 1, clock, batch_size=100)
    pages, cursor = read_until_caught_up(source)
    expected = [1, 2, 3, 4 + gap, 5 + gap, 6 + gap]
    assert [e.sequence for e in entries_of(pages)] == expected
    assert cursor == str(6 + gap)
    assert all(e.metadata for e in entries_of(pages))
    assert source.read_page(cursor).caught_up  # and stays caught up


def test_v2_gaps_are_invisible(server: AzureDicomServer, clock: ManualClock) -> None:
    instances = generate_studies(1, 4, seed=3)
    server.store_all(instances[:2])
    server.skip_sequences(1000)
    server.store_all(instances[2:])
    clock.advance(10)
    pages, _ = read_until_caught_up(make_source(server, 2, clock, batch_size=1))
    assert [e.sequence for e in entries_of(pages)] == [1, 2, 1003, 1004]


def test_v2_restart_in_the_middle_of_a_window(server: AzureDicomServer, clock: ManualClock) -> None:
    instances = generate_studies(3, 5, seed=11)  # 15 entries, all at one timestamp, 3 pages of 4 + 3
    server.store_all(instances)
    clock.advance(10)
    first = make_source(server, 2, clock, batch_size=4)
    page_one = first.read_page(None)
    page_two = first.read_page(page_one.next_cursor)
    first.close()
    reads_before_restart = len(server.feed_requests())

    restarted = make_source(server, 2, clock, batch_size=4)  # resumes from the stored cursor
    rest, _ = read_until_caught_up(restarted, page_two.next_cursor)
    sequences = [e.sequence for e in [*page_one.entries, *page_two.entries, *entries_of(rest)]]
    assert sequences == list(range(1, 16))  # nothing skipped, nothing read twice
    after = server.feed_requests()[reads_before_restart:]
    # each read starts at the cursor's timestamp and skips the rows already read by offset: no re-read
    assert [q["offset"] for q in after] == ["8", "12"]
    assert all(q["starttime"] == after[0]["starttime"] for q in after)


def test_v2_window_end_stays_behind_now(server: AzureDicomServer, clock: ManualClock) -> None:
    source = make_source(server, 2, clock)
    server.store(generate_studies(1, 1, seed=1)[0])
    page = source.read_page(None)
    assert not page.entries and page.caught_up  # committed less than the safety lag ago
    clock.advance(6)
    assert [e.sequence for e in source.read_page(page.next_cursor or None).entries] == [1]


@pytest.mark.parametrize("version", [1, 2])
def test_empty_feed(server: AzureDicomServer, clock: ManualClock, version: int) -> None:
    source = make_source(server, version, clock)
    page = source.read_page(None)
    assert page.caught_up and not page.entries and not page.skipped
    assert source.latest().sequence is None


@pytest.mark.parametrize("version", [1, 2])
def test_missing_metadata_is_read_with_wado(server: AzureDicomServer, clock: ManualClock, version: int) -> None:
    instances = sample_instances()
    server.store_all(instances)
    server.without_metadata.update(uids(i)[2] for i in instances[:2])
    clock.advance(10)
    pages, _ = read_until_caught_up(make_source(server, version, clock))
    assert [e.metadata for e in entries_of(pages)] == [mapped_elements(i) for i in instances]  # what sources keep
    wado = [path for path, _ in server.requests if path.endswith("/metadata")]
    assert len(wado) == 2 and wado[0].startswith(f"/v{version}/studies/")


def test_two_partitions(clock: ManualClock) -> None:
    with AzureDicomServer(partitions_enabled=True, clock=clock) as server:
        north, south = generate_studies(2, 1, seed=5)
        server.store(north, partition="north")
        server.store(south, partition="south")
        server.without_metadata.add(uids(south)[2])
        clock.advance(10)
        everything = make_source(server, 2, clock)
        entries = entries_of(read_until_caught_up(everything)[0])
        kept = [mapped_elements(north), mapped_elements(south)]
        assert [(e.partition, e.metadata) for e in entries] == [("north", kept[0]), ("south", kept[1])]
        assert everything.endpoint_address("south") == f"{server.url}/v2/partitions/south"
        assert f"/v2/partitions/south/studies/{uids(south)[0]}" in next(
            path for path, _ in server.requests if path.endswith("/metadata")
        )
        only_north = make_source(server, 2, clock, settings={"Partitions": ["north"]})
        pages = read_until_caught_up(only_north)[0]
        assert [e.partition for e in entries_of(pages)] == ["north"]
        assert [why for p in pages for _, why in p.skipped] == ["partition south is not in DicomWeb:Partitions"]


@pytest.mark.parametrize("key_case", ["camel", "pascal"])
@pytest.mark.parametrize("enum_case", ["pascal", "lower"])
def test_both_casings(clock: ManualClock, key_case: str, enum_case: str) -> None:
    with AzureDicomServer(clock=clock, key_case=key_case, enum_case=enum_case) as server:
        instance = sample_instances()[0]
        server.store(instance)
        server.delete_instance(*uids(instance))
        clock.advance(10)
        page = make_source(server, 1, clock).read_page(None)
        assert [(e.action, e.state) for e in page.entries] == [(ChangeAction.DELETE, ChangeState.DELETED)]
        assert [e.sequence for e, _ in page.skipped] == [1]


def test_the_server_refuses_bad_windows_and_missing_versions(server: AzureDicomServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        no_zone = client.get("/v2/changefeed", params={"startTime": "2026-01-01T00:00:00"})
        backwards = client.get(
            "/v2/changefeed", params={"startTime": "2026-01-02T00:00:00Z", "endTime": "2026-01-01T00:00:00Z"}
        )
        too_many = client.get("/v2/changefeed", params={"limit": "201"})
        v1_too_many = client.get("/v1/changefeed", params={"limit": "101"})
        assert [r.status_code for r in (no_zone, backwards, too_many, v1_too_many)] == [400, 400, 400, 400]
        assert client.get("/changefeed").status_code == 404
        assert client.get("/v3/changefeed").status_code == 404
        assert client.get("/v2/changefeed", params={"limit": "200"}).status_code == 200


def test_faults_and_tokens_become_dicomcast_errors(clock: ManualClock) -> None:
    with AzureDicomServer(clock=clock, token="sesame") as server:
        server.store(sample_instances()[0])
        with pytest.raises(AuthError, match="DicomWeb:Authentication"):
            make_source(server, 1, clock).read_page(None)

        class Bearer(httpx.Auth):
            def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
                request.headers["Authorization"] = "Bearer sesame"
                yield request

        source = make_source(server, 1, clock, auth=Bearer())
        server.fail_next(1, 429, retry_after="4")
        with pytest.raises(TransientUpstreamError) as throttled:
            source.read_page(None)
        assert throttled.value.retry_after == 4.0
        server.fail_next(1, 0)  # connection reset
        with pytest.raises(TransientUpstreamError):
            source.read_page(None)
        server.fail_next(1, 503, path_contains="/metadata")
        assert [e.sequence for e in source.read_page(None).entries] == [1]  # metadata was included


def test_a_wrong_service_path_says_what_the_endpoint_must_be(server: AzureDicomServer, clock: ManualClock) -> None:
    source = AzureChangeFeedSource(DicomWebSettings(endpoint=f"{server.url}/dicom/v2"), clock=clock)
    with pytest.raises(ServerNotSupportedError, match="DicomWeb:Endpoint"):
        source.read_page(None)


def test_latest_gives_the_feed_end_for_lag(server: AzureDicomServer, clock: ManualClock) -> None:
    server.store_all(generate_studies(1, 2, seed=2))
    server.skip_sequences(3)
    clock.advance(1)
    server.store(generate_studies(1, 1, seed=9)[0])
    for version in (1, 2):
        position = make_source(server, version, clock).latest()
        assert position.sequence == 6
        assert position.timestamp == clock.now


def test_the_source_is_a_change_source(server: AzureDicomServer, clock: ManualClock) -> None:
    source: ChangeSource = make_source(server, 2, clock)  # mypy checks the protocol here
    assert source.name == f"azure:{server.url}/v2"
    assert source.describe_cursor(None) == "the start of the feed"
    source.close()
