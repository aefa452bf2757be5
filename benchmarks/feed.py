"""Feeds of several shapes, served by the loopback Azure DICOM test server (change feed v1 and v2)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from tests.servers.azure_dicom import AzureDicomServer, ManualClock
from tests.servers.azure_dicom_data import DicomJson, generate_studies

# Rows are stamped at a fixed time in the past, so the v2 reader's safety lag never holds them back.
FEED_TIME = datetime(2025, 1, 1, tzinfo=UTC)
DEFAULT_SHAPES = "1x1000,200x50,2000x1"


@dataclass(frozen=True)
class Shape:
    studies: int
    instances: int  # per study
    asked: str = ""  # the shape as asked for, before --scale (targets name these)

    @property
    def total(self) -> int:
        return self.studies * self.instances

    @property
    def name(self) -> str:
        return f"{self.studies}x{self.instances}"

    @property
    def target_name(self) -> str:
        return self.asked or self.name


def parse_shapes(text: str, scale: float = 1.0) -> list[Shape]:
    """`"1x1000,200x50"` -> shapes; `scale` shrinks (or grows) the larger dimension of each."""
    shapes: list[Shape] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        asked = part.strip().lower()
        studies, instances = (int(n) for n in asked.split("x"))
        if studies >= instances:
            studies = max(1, round(studies * scale))
        else:
            instances = max(1, round(instances * scale))
        shapes.append(Shape(studies, instances, asked))
    return shapes


def instances_for(shape: Shape, seed: int = 7) -> list[DicomJson]:
    return generate_studies(shape.studies, shape.instances, seed=seed)


@contextmanager
def serve_feed(shape: Shape, seed: int = 7) -> Iterator[AzureDicomServer]:
    """The Azure DICOM test server holding the shape's instances, one create entry each."""
    clock = ManualClock(FEED_TIME)
    with AzureDicomServer(clock=clock) as server:
        for instance in instances_for(shape, seed):
            server.store(instance)
            clock.advance(0.001)  # distinct timestamps, as a real STOW stream has
        yield server
