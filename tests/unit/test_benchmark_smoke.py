"""The benchmark's plumbing on a tiny feed: every variant produces numbers and the report shows them.

No timing is asserted: only that the runs happen, count what they sent, and render. FHIR is the
instant stub (in-process), the feed the loopback Azure DICOM test server.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import pytest

from benchmarks.baseline import run_baseline
from benchmarks.ceiling import run_ceiling, save_final
from benchmarks.feed import Shape, instances_for, parse_shapes, serve_feed
from benchmarks.measure import Result
from benchmarks.procs import with_rtt
from benchmarks.profile import summarize
from benchmarks.report import Extra, ShapeReport, render
from benchmarks.run import median_run, parse_args
from benchmarks.stub_fhir import serve_stub
from benchmarks.worker_run import WorkerJob, run_worker
from tests.servers.azure_dicom_data import uids

SHAPE = Shape(2, 3, "200x50")


def test_parse_shapes_scales_the_larger_dimension() -> None:
    shapes = parse_shapes("1x1000,200x50,2000x1", scale=0.1)
    assert [(s.studies, s.instances) for s in shapes] == [(1, 100), (20, 50), (200, 1)]
    assert [s.target_name for s in shapes] == ["1x1000", "200x50", "2000x1"]


def test_the_mixed_shape_is_a_hospital_day_of_interleaved_studies() -> None:
    [shape] = parse_shapes("mixed:20")
    sizes = sorted(shape.sizes)
    assert (shape.studies, len(sizes), shape.total) == (20, 20, sum(sizes))
    assert all(1 <= n <= 4 for n in sizes[:12]) and all(50 <= n <= 300 for n in sizes[12:18])
    assert all(n >= 1000 for n in sizes[18:])
    feed = instances_for(shape)
    assert len(feed) == shape.total
    studies = [uids(i)[0] for i in feed]
    assert len(set(studies)) == 20
    switches = sum(1 for a, b in itertools.pairwise(studies) if a != b)
    assert switches > 2 * 20  # studies stored at once, not one after another
    assert parse_shapes("mixed:40", scale=0.1)[0].studies == 4


def test_the_rtt_proxy_forwards_to_the_fhir_server() -> None:
    with serve_stub() as fhir_url, with_rtt(fhir_url, 1) as slowed:
        assert slowed != fhir_url
        answer = httpx.get(f"{slowed}/metadata").raise_for_status().json()
    assert answer["resourceType"] == "CapabilityStatement"


def test_every_variant_produces_numbers(tmp_path: Path) -> None:
    with serve_feed(SHAPE) as feed, serve_stub() as fhir_url:
        worker = run_worker(WorkerJob("dicomcast", SHAPE.name, f"{feed.url}/v2", fhir_url, tmp_path))
        baseline = run_baseline(SHAPE.name, feed.url, fhir_url)
        resources = tmp_path / "final.json"
        study = {
            "resourceType": "ImagingStudy",
            "id": "s1",
            "numberOfInstances": 3,
            "subject": {"reference": "Patient/p1"},
        }
        save_final(
            {"Endpoint": [], "Patient": [{"resourceType": "Patient", "id": "p1"}], "ImagingStudy": [study]}, resources
        )
        ceiling = run_ceiling(SHAPE.name, fhir_url, resources, concurrency=2)

    assert worker.instances == baseline.instances == SHAPE.total
    assert baseline.fhir_requests == 4 * SHAPE.total  # per instance: 3 searches + 1 transaction
    assert 0 < worker.fhir_requests < baseline.fhir_requests  # one transaction per study, batched searches
    assert worker.fhir_bytes > 0 and baseline.fhir_bytes > worker.fhir_bytes
    assert (ceiling.instances, ceiling.fhir_requests) == (3, 2)  # Patient, then ImagingStudy
    assert worker.peak_rss_mb > 0 and worker.seconds > 0

    report = ShapeReport(SHAPE.name, SHAPE.target_name, {"dicomcast": worker, "baseline": baseline, "ceiling": ceiling})
    text = render([report], [Extra("backlog:", ["ran"], ("peak RSS <= 200 MB", True))], "header")
    assert "2x3" in text and "a/b (dicomcast/baseline)" in text
    assert f"{worker.requests_per_instance:.3f}" in text
    assert "peak RSS <= 200 MB  MET" in text


def test_profile_summary_counts_functions(tmp_path: Path) -> None:
    stacks = tmp_path / "x.stacks.txt"
    stacks.write_text(
        "thread (1);main (a/run.py:3);map_study (mapping/engine.py:70) 30\n"
        "thread (1);main (a/run.py:3);send (dicomcast/http.py:9) 10\n"
    )
    text = summarize(stacks)
    assert "40 busy samples" in text
    assert "75.0   75.0  map_study (mapping/engine.py)" in text


def test_repeated_runs_show_the_median_run_whole_and_list_every_run() -> None:
    runs = [Result(f"dicomcast{s}", "2x3", 6, seconds, 3, 100 * n, 50.0) for n, (s, seconds) in
            enumerate([("", 0.9), (".2", 0.4), (".3", 0.6)])]  # fmt: skip
    median = median_run(runs)
    assert (median.variant, median.seconds, median.fhir_bytes) == ("dicomcast", 0.6, 200)  # one run's columns

    report = ShapeReport("2x3", "2x3", {"dicomcast": median}, runs={"dicomcast": [0.9, 0.4, 0.6]})
    assert "dicomcast     0.90  0.40  0.60" in render([report], [], "header")
    assert "runs (seconds" not in render([ShapeReport("2x3", "2x3", {"dicomcast": median})], [], "header")


def test_repeat_is_an_odd_number_of_runs() -> None:
    assert parse_args(["--repeat", "5"]).repeat == 5 and parse_args([]).repeat == 3
    with pytest.raises(SystemExit):
        parse_args(["--repeat", "2"])


def test_a_frozen_feed_serves_what_it_served_before_and_refuses_changes() -> None:
    with serve_feed(SHAPE) as feed:
        url = f"{feed.url}/v2/changefeed"
        window = {"startTime": "2000-01-01T00:00:00Z", "endTime": "2100-01-01T00:00:00Z", "includeMetadata": "true"}
        first = httpx.get(url, params=window).raise_for_status().content
        again = httpx.get(url, params=window).raise_for_status().content
        assert first == again
        assert len(httpx.get(url, params=window).json()) == min(SHAPE.total, 100)
        with pytest.raises(RuntimeError, match="frozen"):
            feed.store(instances_for(SHAPE)[0])
        with pytest.raises(RuntimeError, match="frozen"):
            feed.delete_study("1.2.3")


def test_the_ct_metadata_feed_carries_a_real_images_elements_but_its_own_uids() -> None:
    with serve_feed(SHAPE, metadata="ct") as feed:
        window = {"startTime": "2000-01-01T00:00:00Z", "endTime": "2100-01-01T00:00:00Z", "includeMetadata": "true"}
        rows = httpx.get(f"{feed.url}/v2/changefeed", params=window).raise_for_status().json()
    assert len(rows) == SHAPE.total
    for row in rows:
        metadata = row["metadata"]
        assert len(metadata) > 200  # CT_small's 257 elements, and the generated ones
        assert metadata["0020000D"]["Value"] == [row["studyInstanceUid"]]
        assert metadata["00080018"]["Value"] == [row["sopInstanceUid"]]
    assert len({row["sopInstanceUid"] for row in rows}) == SHAPE.total
