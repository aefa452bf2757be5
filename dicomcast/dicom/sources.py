"""The one place that picks a concrete `ChangeSource` for a DICOMweb server's settings, so the
worker builds sources without knowing them (Orthanc `/changes` or the Azure change feed)."""

from __future__ import annotations

import httpx

from dicomcast.config.settings import DicomWebSettings, ServerType
from dicomcast.dicom.azure import AzureChangeFeedSource
from dicomcast.dicom.models import ChangeSource
from dicomcast.dicom.orthanc import OrthancSource, orthanc_root
from dicomcast.http import make_client

POOL_SIZE = 4  # the DICOM client's connections (reconcile/run.py sizes its threads to them)


def open_source(
    web: DicomWebSettings,
    *,
    auth: httpx.Auth | None,
    setting_prefix: str,
    batch_size: int | None,
    ignore_parsing_errors: bool,
    transport: httpx.BaseTransport | None = None,
) -> ChangeSource:
    """The source `web.server_type` names, over its own keep-alive client."""
    if web.server_type == ServerType.ORTHANC:
        client = make_client(orthanc_root(web), auth=auth, transport=transport, pool_size=POOL_SIZE)
        return OrthancSource(web, client, batch_size=batch_size, setting_prefix=setting_prefix)
    client = make_client("", auth=auth, transport=transport, pool_size=POOL_SIZE)
    return AzureChangeFeedSource(web, batch_size=batch_size, client=client, ignore_parsing_errors=ignore_parsing_errors)
