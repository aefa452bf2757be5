"""A source's close() closes the keep-alive client it reads with: build() makes one per source
(sources.py), and its pooled connections would otherwise stay open until garbage collection."""

from __future__ import annotations

import pytest

from dicomcast.config.settings import DicomWebSettings, ServerType
from dicomcast.dicom.azure import AzureChangeFeedSource
from dicomcast.dicom.orthanc import OrthancSource
from dicomcast.dicom.sources import open_source


@pytest.mark.parametrize(
    ("server_type", "endpoint", "kind"),
    [
        (ServerType.AZURE, "http://dicom.test/v2", AzureChangeFeedSource),
        (ServerType.ORTHANC, "http://dicom.test/dicom-web", OrthancSource),
    ],
)
def test_a_source_closes_the_client_opened_for_it(server_type: ServerType, endpoint: str, kind: type) -> None:
    web = DicomWebSettings(endpoint=endpoint, server_type=server_type)
    source = open_source(web, auth=None, setting_prefix="DicomWeb", batch_size=None, ignore_parsing_errors=False)
    client = source._client if isinstance(source, AzureChangeFeedSource) else source._http  # type: ignore[attr-defined]
    assert isinstance(source, kind) and not client.is_closed

    source.close()

    assert client.is_closed
