"""The test seam of worker/hooks.py: no observer unless a test registers one, observers called in
order on the thread that reached the moment, the sync loop reaching its moments in the order the
crash-safety tests rely on, and no production module reading a fault variable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import dicomcast
from dicomcast.worker import hooks
from dicomcast.worker.loop import SourceWorker
from dicomcast.worker.state import WorkerState
from tests.fault_entry import POINTS, register_from_environment
from tests.unit.worker.fakes import FakeFhir, FakeSource, make_context, memory_store, study_entries


@pytest.fixture
def seen() -> Iterator[list[str]]:
    """Moments reached while the test runs, recorded by an observer of every moment."""
    moments: list[str] = []
    forget = [hooks.observe(moment, moments.append) for moment in hooks.MOMENTS]
    yield moments
    for unregister in forget:
        unregister()


def test_nothing_observes_a_moment_by_default() -> None:
    assert hooks._observers == {} or all(not observers for observers in hooks._observers.values())
    hooks.reached("before-checkpoint")  # no observer: nothing happens


def test_observers_are_called_in_order_and_can_be_forgotten() -> None:
    calls: list[str] = []
    forget_first = hooks.observe("page-read", lambda m: calls.append(f"first {m}"))
    forget_second = hooks.observe("page-read", lambda m: calls.append(f"second {m}"))
    hooks.reached("page-read")
    hooks.reached("after-checkpoint")  # not observed
    forget_first()
    hooks.reached("page-read")
    forget_second()
    hooks.reached("page-read")
    assert calls == ["first page-read", "second page-read", "second page-read"]


def test_an_observer_that_raises_stops_the_caller() -> None:
    def fail(moment: hooks.Moment) -> None:
        raise RuntimeError(moment)

    forget = hooks.observe("run-start", fail)
    try:
        with pytest.raises(RuntimeError, match="run-start"):
            hooks.reached("run-start")
    finally:
        forget()


def test_an_unknown_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown moment 'page-reed'"):
        hooks.observe("page-reed", print)  # type: ignore[arg-type]


def test_the_sync_loop_reaches_each_moment_where_the_kill_tests_hold_it(seen: list[str]) -> None:
    source = FakeSource([study_entries("1.2.3.1", [1]), study_entries("1.2.3.2", [2], patient_id="PAT-2")])
    worker = SourceWorker(make_context(source, FakeFhir(), memory_store(), max_batch_entries=1), WorkerState(), "h:1")

    assert worker.run_cycle().ok

    batch = ["page-read", "study-written", "before-checkpoint", "after-checkpoint"]
    assert seen == batch + batch
    assert set(POINTS) == set(hooks.MOMENTS) - {"run-start"}


def test_the_fault_entry_raises_at_run_start_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    before = dict(hooks._observers)
    monkeypatch.setenv("DICOMCAST_FAULT_UNEXPECTED", "1")
    monkeypatch.delenv("DICOMCAST_FAULT_HOLD", raising=False)
    register_from_environment()
    try:
        with pytest.raises(RuntimeError, match="DICOMCAST_FAULT_UNEXPECTED"):
            hooks.reached("run-start")
    finally:
        hooks._observers.clear()
        hooks._observers.update(before)


def test_no_production_module_reads_a_fault_variable_or_imports_the_tests() -> None:
    package = Path(dicomcast.__file__).parent
    sources = {path: path.read_text() for path in package.rglob("*.py")}
    assert [str(p) for p, text in sources.items() if "DICOMCAST_FAULT" in text] == []
    assert [str(p) for p, text in sources.items() if "from tests" in text or "import tests" in text] == []
