"""The first checkpoint of a source is asked of the source (`ChangeSource.carry_over()`), never
found by testing which class it is: a source that can continue its predecessor's checkpoint does,
once, through the store; a source that cannot starts at its feed's start."""

from __future__ import annotations

from dataclasses import dataclass, field

from dicomcast.worker.carry_over import initial_cursor
from tests.unit.worker.fakes import FakeFhir, FakeSource, make_context, memory_store


@dataclass
class FakeCarryOver:
    predecessor: str | None = "fake:v1"
    asked: list[int] = field(default_factory=list)

    def predecessor_sequence(self, cursor: str) -> int:
        return int(cursor.removeprefix("seq-"))

    def cursor_after_sequence(self, sequence: int) -> str | None:
        self.asked.append(sequence)
        return f"after-{sequence}"


@dataclass
class CarryingSource(FakeSource):
    carrying: FakeCarryOver = field(default_factory=FakeCarryOver)

    def carry_over(self) -> FakeCarryOver:  # type: ignore[override]
        return self.carrying


def test_a_source_continues_its_predecessors_checkpoint_once_and_saves_it() -> None:
    source = CarryingSource([])
    ctx = make_context(source, FakeFhir(), memory_store())
    ctx.store.save_page("fake:v1", "seq-41")

    assert initial_cursor(ctx) == "after-41"
    assert ctx.store.read_checkpoint(source.name) == "after-41"
    assert initial_cursor(ctx) is None  # asked once per process
    assert source.carrying.asked == [41]


def test_no_predecessor_checkpoint_and_no_dicomcast_table_start_at_the_feed_start() -> None:
    source = CarryingSource([], carrying=FakeCarryOver(predecessor=None))
    ctx = make_context(source, FakeFhir(), memory_store())

    assert initial_cursor(ctx) is None
    assert ctx.store.read_checkpoint(source.name) is None and source.carrying.asked == []


def test_a_source_without_carry_over_starts_at_the_feed_start() -> None:
    source = FakeSource([])
    ctx = make_context(source, FakeFhir(), memory_store())
    ctx.store.save_page("fake:v1", "seq-41")

    assert initial_cursor(ctx) is None
    assert ctx.store.read_checkpoint(source.name) is None
