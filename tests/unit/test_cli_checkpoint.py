"""`checkpoint set SOURCE latest` / `import-dicomcast`: which source, and what a non-Azure one gets."""

from __future__ import annotations

from typing import Any

import pytest

from dicomcast.cli import checkpoint_cursor as cli_checkpoint
from dicomcast.config import load_settings
from dicomcast.dicom.models import FeedPosition
from dicomcast.errors import ConfigError


class _Orthanc:
    def __init__(self, name: str, sequence: int | None) -> None:
        self.name, self._sequence, self.closed = name, sequence, False

    def latest(self) -> FeedPosition:
        return FeedPosition(self._sequence, None)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def sources(monkeypatch: pytest.MonkeyPatch) -> list[_Orthanc]:
    made: list[_Orthanc] = []

    def change_source(source: Any, settings: Any) -> _Orthanc:
        made.append(_Orthanc(f"orthanc:{source.dicom_web.endpoint}", 41 if not made else None))
        return made[-1]

    monkeypatch.setattr("dicomcast.worker.build.change_source", change_source)
    return made


def test_latest_of_a_non_azure_source_is_its_newest_sequence(sources: list[_Orthanc]) -> None:
    settings = load_settings(
        environ={"DicomWeb__Endpoint": "http://o:8042", "DicomWeb__ServerType": "Orthanc"}
    ).settings
    assert cli_checkpoint.latest_cursor_of(settings, "orthanc:http://o:8042") == "41"
    assert all(source.closed for source in sources)


def test_several_sources_need_a_name_and_an_unknown_name_is_refused(sources: list[_Orthanc]) -> None:
    environ = {"Sources__0__DicomWeb__Endpoint": "http://a", "Sources__1__DicomWeb__Endpoint": "http://b"}
    settings = load_settings(environ=environ).settings
    assert cli_checkpoint.latest_cursor_of(settings, "orthanc:http://b") is None  # an empty feed: from the start
    with pytest.raises(ConfigError, match="orthanc:http://a, orthanc:http://b"):
        cli_checkpoint.latest_cursor_of(settings, "orthanc:http://c")
    with pytest.raises(ConfigError, match="TableStore:ConnectionString or TableStore:EndpointUri"):
        cli_checkpoint.import_dicomcast(settings, None)
    assert all(source.closed for source in sources)
