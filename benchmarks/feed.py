"""Feeds of several shapes, served by the loopback Azure DICOM test server (change feed v1 and v2)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pydicom
from pydicom.data import get_testdata_file

from tests.servers.azure_dicom import AzureDicomServer, ManualClock
from tests.servers.azure_dicom_data import DicomJson, dicom_json, generate_studies

# Rows are stamped at a fixed time in the past, so the v2 reader's safety lag never holds them back.
FEED_TIME = datetime(2025, 1, 1, tzinfo=UTC)
DEFAULT_SHAPES = "1x1000,200x50,2000x1,mixed:40"
# A hospital's day (issue 14): 60% of studies 1-4 instances (radiography), 30% 50-300 (CT, MR
# series), 10% 1,000 or more (thin-slice CT, tomosynthesis), stored by several modalities at once.
MIXED_CLASSES = ((0.6, 1, 4), (0.3, 50, 300), (0.1, 1000, 1500))
MODALITIES_AT_ONCE = 4


@dataclass(frozen=True)
class Shape:
    studies: int
    instances: int  # per study (0 for a mixed shape: see sizes)
    asked: str = ""  # the shape as asked for, before --scale (targets name these)
    sizes: tuple[int, ...] = ()  # a mixed shape: instances of each study, interleaved in the feed

    @property
    def total(self) -> int:
        return sum(self.sizes) if self.sizes else self.studies * self.instances

    @property
    def name(self) -> str:
        return f"mixed{self.studies}" if self.sizes else f"{self.studies}x{self.instances}"

    @property
    def target_name(self) -> str:
        return self.asked or self.name


def parse_shapes(text: str, scale: float = 1.0) -> list[Shape]:
    """`"1x1000,200x50"` -> shapes; `scale` shrinks (or grows) the larger dimension of each."""
    shapes: list[Shape] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        asked = part.strip().lower()
        if asked.startswith("mixed"):  # mixed:N, N studies (--scale scales N, not the study sizes)
            shapes.append(mixed_shape(max(1, round(int(asked.partition(":")[2] or 40) * scale)), asked))
            continue
        studies, instances = (int(n) for n in asked.split("x"))
        if studies >= instances:
            studies = max(1, round(studies * scale))
        else:
            instances = max(1, round(instances * scale))
        shapes.append(Shape(studies, instances, asked))
    return shapes


def mixed_shape(studies: int, asked: str = "", seed: int = 7) -> Shape:
    rng = random.Random(seed)
    counts = [round(share * studies) for share, _, _ in MIXED_CLASSES[:-1]]
    counts.append(max(0, studies - sum(counts)))
    sizes = [rng.randint(low, high) for n, (_, low, high) in zip(counts, MIXED_CLASSES, strict=True) for _ in range(n)]
    rng.shuffle(sizes)
    return Shape(studies, 0, asked, tuple(sizes))


def instances_for(shape: Shape, seed: int = 7) -> list[DicomJson]:
    if not shape.sizes:
        return generate_studies(shape.studies, shape.instances, seed=seed)
    studies = [
        [{**i, **dicom_json(PatientID=f"MIX{n:06d}")} for i in generate_studies(1, size, seed=seed * 100_003 + n)]
        for n, size in enumerate(shape.sizes)
    ]
    return interleave(studies, MODALITIES_AT_ONCE, random.Random(seed))


def interleave(studies: list[list[DicomJson]], at_once: int, rng: random.Random) -> list[DicomJson]:
    """The feed of `at_once` modalities storing together: each next instance comes from one of the
    studies in progress, at random; a finished study's modality starts the next study."""
    waiting = iter(studies)
    storing = [iter(s) for s in (next(waiting, None) for _ in range(at_once)) if s is not None]
    feed: list[DicomJson] = []
    while storing:
        modality = rng.randrange(len(storing))
        instance = next(storing[modality], None)
        if instance is not None:
            feed.append(instance)
            continue
        following = next(waiting, None)
        if following is None:
            storing.pop(modality)
        else:
            storing[modality] = iter(following)
    return feed


def ct_elements() -> DicomJson:
    """The elements of a real CT image (pydicom's CT_small.dcm without its pixel data: 257 elements,
    private ones included, about 12 KB of JSON) but its UIDs: what an instance's metadata holds in a
    hospital's feed, where a generated instance holds 19 elements (1.4 KB)."""
    path = get_testdata_file("CT_small.dcm")
    if not isinstance(path, str):
        raise FileNotFoundError("pydicom's test file CT_small.dcm")
    dataset = pydicom.dcmread(path)
    del dataset.PixelData
    elements = dataset.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=lambda _: "")
    return {tag: value for tag, value in elements.items() if tag not in _CT_UIDS}


_CT_UIDS = {"00080016", "00080018", "0020000D", "0020000E"}  # SOP class and instance, study, series


@contextmanager
def serve_feed(shape: Shape, seed: int = 7, metadata: str = "plain") -> Iterator[AzureDicomServer]:
    """The Azure DICOM test server holding the shape's instances, one create entry each; with
    `metadata` "ct", each also carries the other elements of a real CT image (ct_elements)."""
    clock = ManualClock(FEED_TIME)
    extra = ct_elements() if metadata == "ct" else {}
    with AzureDicomServer(clock=clock) as server:
        for instance in instances_for(shape, seed):
            server.store({**extra, **instance} if extra else instance)
            clock.advance(0.001)  # distinct timestamps, as a real STOW stream has
        server.freeze()
        yield server
