"""Reconcile runs on real archives' terms: resumed after an interruption, one repairing run per
source, data partitions; the loopback Azure DICOM service and the real FHIR server, in-process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomcast.config import load_settings
from dicomcast.errors import LeaseLostError
from dicomcast.reconcile.run import RunOptions, SourceReport, reconcile_source
from dicomcast.store import Store, make_engine, migrate
from dicomcast.worker.build import build
from tests import peers
from tests.integration import reconcile_helpers as rh
from tests.integration.azure_worker import azure_env
from tests.integration.sync_helpers import dicomcast
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.azure_dicom_data import generate_studies, uids

pytestmark = pytest.mark.integration


@pytest.fixture
def azure() -> Iterator[AzureDicomServer]:
    with AzureDicomServer() as server:
        yield server


def _reconcile(env: dict[str, str], options: RunOptions, stop_after_studies: int | None = None) -> SourceReport:
    """One in-process run; with `stop_after_studies`, a stop is requested (as SIGTERM does) once that
    many studies' instances were listed: the chunk in hand finishes, the run ends interrupted."""
    settings = load_settings(environ=env).settings
    event = threading.Event()
    parts = build(settings, event)
    ctx = parts.contexts[0]
    if stop_after_studies is not None:
        inner, listed = ctx.source, [0]

        class Stopping:
            name = inner.name

            def dicomweb_json(self, path: str, params: Any = None, partition: Any = None) -> Any:
                if path.endswith("/instances"):
                    listed[0] += 1
                    if listed[0] >= stop_after_studies:
                        event.set()
                return inner.dicomweb_json(path, params, partition)  # type: ignore[attr-defined]

            def dicomweb(self) -> Any:
                return self  # reconcile reads DICOMweb through this wrapper

            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

        ctx.source = Stopping()  # type: ignore[assignment]
    try:
        return reconcile_source(ctx, options)
    finally:
        parts.close()


def test_an_interrupted_repair_resumes_after_the_last_chunk_done(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    instances = generate_studies(10, 2, seed=5)
    azure.store_all(instances)  # FHIR is empty: ten missing studies
    env = azure_env(f"{azure.url}/v2", fhir_server.url, tmp_path / "s.db")
    options = RunOptions(chunk_studies=3)

    first = _reconcile(env, options, stop_after_studies=4)  # stops during the second chunk
    assert first.interrupted and first.checked == 6 and first.studies_written == 6
    assert len(rh.studies_by_uid(fhir_server)) == 6
    store = Store(make_engine(f"sqlite:///{tmp_path / 's.db'}"))
    assert store.resume_point(f"azure:{azure.url}/v2") is not None  # the resume point
    assert store.checkpoints() == []  # no feed checkpoint moved, none stands in for the run

    second = _reconcile(env, options)
    assert not second.interrupted and second.resumed_after is not None
    assert second.checked == 4 and second.studies_written == 4
    expected: rh.Expected = {}
    for instance in instances:
        study, series, sop = uids(instance)
        expected.setdefault(study, {}).setdefault(series, set()).add(sop)
    rh.assert_matches(fhir_server, expected)
    store = Store(make_engine(f"sqlite:///{tmp_path / 's.db'}"))
    assert store.resume_point(f"azure:{azure.url}/v2") is None  # a finished run leaves nothing behind
    assert _reconcile(env, RunOptions(dry_run=True)).differing == 0


def test_one_repairing_run_per_source(azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path) -> None:
    azure.store_all(generate_studies(1, 1, seed=6))
    env = azure_env(f"{azure.url}/v2", fhir_server.url, tmp_path / "s.db")
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    migrate(engine)
    from datetime import timedelta

    assert Store(engine).acquire_lease(f"reconcile-run:azure:{azure.url}/v2", "otherhost:1:abc", timedelta(minutes=5))
    with pytest.raises(LeaseLostError, match="another reconcile"):
        _reconcile(env, RunOptions())
    assert rh.studies_by_uid(fhir_server) == {}
    assert _reconcile(env, RunOptions(dry_run=True)).differing == 1  # a dry run needs no lease


def test_partitions_each_study_under_its_partition(fhir_server: peers.Peer, tmp_path: Path) -> None:
    with AzureDicomServer(partitions_enabled=True) as azure:
        first, second = generate_studies(2, 2, seed=7)[:2], generate_studies(2, 2, seed=7)[2:]
        azure.store_all(first, partition="alpha")
        azure.store_all(second, partition="beta")
        env = azure_env(f"{azure.url}/v2", fhir_server.url, tmp_path / "s.db")
        report = _reconcile(env, RunOptions())
        assert report.checked == 2 and report.studies_written == 2
        studies = {uid: v[0] for uid, v in rh.studies_by_uid(fhir_server).items()}
        assert studies[uids(first[0])[0]]["meta"]["source"] == f"{azure.url}/v2/partitions/alpha"
        assert studies[uids(second[0])[0]]["meta"]["source"] == f"{azure.url}/v2/partitions/beta"
        azure.delete_study(uids(second[0])[0], partition="beta")
        gone = _reconcile(env, RunOptions())
        assert gone.kinds == {"gone-study": 1} and set(rh.studies_by_uid(fhir_server)) == {uids(first[0])[0]}
        assert _reconcile(env, RunOptions(dry_run=True)).differing == 0


def test_data_the_mapping_cannot_use_is_a_failure_row_and_exit_3(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    good, bad = generate_studies(2, 1, seed=8)
    del bad["00080060"]  # no Modality: the mapping refuses the instance
    azure.store_all([good, bad])
    env = azure_env(f"{azure.url}/v2", fhir_server.url, tmp_path / "s.db", Logging__Format="json")
    report = _reconcile(env, RunOptions())
    assert report.studies_written == 1 and report.failures == 1 and report.unresolved == 1
    rows = Store(make_engine(f"sqlite:///{tmp_path / 's.db'}")).failures()
    assert [(r.study_uid, r.failure_class, r.sequence) for r in rows] == [(uids(bad)[0], "dicom", 0)]
    again = dicomcast(["reconcile"], env)
    assert again.returncode == 3, again.stdout + again.stderr
    assert "not repaired" in again.stdout + again.stderr
    assert len(Store(make_engine(f"sqlite:///{tmp_path / 's.db'}")).failures()) == 1  # the same row, seen again


def test_full_finds_what_only_the_mapping_sees_and_filters_narrow_the_run(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    from datetime import date

    from dicomcast.dicom.inventory import StudyFilter

    instances = generate_studies(3, 2, seed=9)
    azure.store_all(instances)
    env = azure_env(f"{azure.url}/v2", fhir_server.url, tmp_path / "s.db")
    assert _reconcile(env, RunOptions()).studies_written == 3
    edited, other = uids(instances[0])[0], uids(instances[2])[0]
    found = {uid: v[0] for uid, v in rh.studies_by_uid(fhir_server).items()}
    rh.edit_study(fhir_server, found[edited], lambda s: s.update(description="edited by hand"))
    rh.edit_study(fhir_server, found[other], rh.wrong_counts)

    assert _reconcile(env, RunOptions(dry_run=True)).kinds == {"counts": 1}  # QIDO-RS cannot see a description
    assert _reconcile(env, RunOptions(dry_run=True, full=True)).kinds == {"counts": 1, "content": 1}
    one = _reconcile(env, RunOptions(dry_run=True, full=True, filters=StudyFilter(study_uid=edited)))
    assert (one.listed, one.checked, one.kinds) == (1, 1, {"content": 1})
    study_date = str(instances[0]["00080020"]["Value"][0])
    day = date(int(study_date[:4]), int(study_date[4:6]), int(study_date[6:]))
    dated = _reconcile(env, RunOptions(dry_run=True, full=True, filters=StudyFilter(date_from=day, date_to=day)))
    assert dated.kinds.get("content") == 1 and dated.listed < 3

    repaired = _reconcile(env, RunOptions(full=True))
    assert repaired.studies_written == 2
    assert rh.studies_by_uid(fhir_server)[edited][0]["description"] == "Study 0"
    assert _reconcile(env, RunOptions(dry_run=True, full=True)).differing == 0
