"""Sample studies from pydicom's bundled files (no network: download=False), plus generated copies
that add instances and series, so the sync has several multi-instance studies to work on."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

BUNDLED = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtdose.dcm", "SC_rgb_small_odd.dcm", "waveform_ecg.dcm"]


def bundled(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        raise FileNotFoundError(f"pydicom does not bundle {name}")
    return Path(str(path))


def copy_instance(
    source: Path,
    target: Path,
    *,
    number: int,
    series_uid: str | None = None,
    prefix: str = "1.2.826.0.1.3680043.10.1234.",
) -> Path:
    """A copy of `source` with a new SOP Instance UID (same study), optionally in another series."""
    dataset = pydicom.dcmread(source)
    uid = generate_uid(prefix=prefix, entropy_srcs=[str(source), str(number), series_uid or ""])
    dataset.SOPInstanceUID = uid
    dataset.file_meta.MediaStorageSOPInstanceUID = uid
    dataset.InstanceNumber = number
    if series_uid:
        dataset.SeriesInstanceUID = series_uid
        dataset.SeriesNumber = 2
    dataset.AccessionNumber = "ACC-" + str(abs(hash(dataset.StudyInstanceUID)) % 10**6)
    dataset.save_as(target, enforce_file_format=True)
    return target


def sample_files(workdir: Path, extra_instances: int = 3) -> list[Path]:
    """6 studies: the bundled files, plus `extra_instances` more CT and MR instances, one CT series more."""
    workdir.mkdir(parents=True, exist_ok=True)
    files = [bundled(name) for name in BUNDLED]
    for base in ("CT_small.dcm", "MR_small.dcm"):
        for number in range(2, 2 + extra_instances):
            files.append(copy_instance(bundled(base), workdir / f"{base}-{number}.dcm", number=number))
    second_series = generate_uid(prefix="1.2.826.0.1.3680043.10.1234.", entropy_srcs=["ct-series-2"])
    files.append(
        copy_instance(bundled("CT_small.dcm"), workdir / "CT_small-series2.dcm", number=1, series_uid=second_series)
    )
    return files


def expected_counts(files: list[Path]) -> dict[str, tuple[int, int]]:
    """StudyInstanceUID -> (numberOfSeries, numberOfInstances) for the files."""
    studies: dict[str, dict[str, set[str]]] = {}
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        studies.setdefault(ds.StudyInstanceUID, {}).setdefault(ds.SeriesInstanceUID, set()).add(ds.SOPInstanceUID)
    return {uid: (len(series), sum(len(s) for s in series.values())) for uid, series in studies.items()}
