"""Sources say what they are and can do (ChangeSource.traits, cursor_sequence, deletion_check), so
the worker and `check` never test which class a source is."""

from __future__ import annotations

import httpx
import pytest

from dicomcast.config.settings import DicomWebSettings
from dicomcast.dicom.azure import AzureChangeFeedSource
from dicomcast.dicom.models import CursorKind
from dicomcast.dicom.orthanc import OrthancSource

ROOT = "http://dicom.test"


@pytest.mark.parametrize(
    ("version", "cursor", "sequence", "kind"),
    [(1, "42", 42, CursorKind.SEQUENCE), (2, "42@2026-01-01T00:00:00Z#3", 42, CursorKind.FEED_POSITION)],
)
def test_azure_says_its_version_and_the_sequence_of_its_cursors(
    version: int, cursor: str, sequence: int, kind: CursorKind
) -> None:
    source = AzureChangeFeedSource(DicomWebSettings(endpoint=f"{ROOT}/v{version}"), client=httpx.Client())

    assert source.traits.kind == f"Azure change feed v{version}"
    assert (source.traits.api_version, source.traits.partitions, source.traits.cursor_kind) == (version, True, kind)
    assert source.cursor_sequence(cursor) == sequence  # the checkpoint metric, v2 included
    assert source.cursor_sequence("not a cursor") is None
    assert source.deletion_check() is None  # the feed reports deletions itself


def test_orthanc_needs_its_deletions_found_and_counts_its_changes() -> None:
    source = OrthancSource(DicomWebSettings(endpoint=ROOT, server_type="Orthanc"), httpx.Client())

    assert (source.traits.kind, source.traits.api_version, source.traits.partitions) == (
        "Orthanc /changes",
        None,
        False,
    )
    assert source.cursor_sequence("17") == 17 and source.cursor_sequence(None) is None
    assert source.deletion_check() is source
