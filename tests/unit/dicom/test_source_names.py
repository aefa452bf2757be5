"""Source names (checkpoint, lease and failure keys, metrics labels, every log line) and FHIR
addresses never hold credentials; a URL without credentials keeps exactly its old name."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import redirect_stdout

import httpx
import pytest
import structlog

from dicomcast.config.settings import DicomWebSettings
from dicomcast.dicom.azure import AzureChangeFeedSource
from dicomcast.dicom.orthanc import OrthancSource
from dicomcast.fhir.mapping.types import MappingOptions
from dicomcast.logs import configure_logging, get_logger
from dicomcast.mapcmd import map_instances


@pytest.mark.parametrize(
    ("endpoint", "name", "address"),
    [
        (
            "https://ws-dicom.dicom.azurehealthcareapis.com/v2",
            "azure:https://ws-dicom.dicom.azurehealthcareapis.com/v2",
            None,
        ),
        ("https://ana:pw@dicom.test/v1", "azure:https://dicom.test/v1", "https://dicom.test/v1"),
    ],
)
def test_azure_names(endpoint: str, name: str, address: str | None) -> None:
    source = AzureChangeFeedSource(DicomWebSettings(endpoint=endpoint))
    assert source.name == name
    assert source.endpoint_address(None) == (address or endpoint)
    source.close()


@pytest.mark.parametrize(
    ("endpoint", "name", "address"),
    [
        ("http://127.0.0.1:8042", "orthanc:http://127.0.0.1:8042", "http://127.0.0.1:8042/dicom-web"),
        ("http://orthanc:8042/dicom-web/", "orthanc:http://orthanc:8042", "http://orthanc:8042/dicom-web"),
        ("http://ana:pw@orthanc:8042?token=t", "orthanc:http://orthanc:8042?token=***", None),
    ],
)
def test_orthanc_names(endpoint: str, name: str, address: str | None) -> None:
    source = OrthancSource(DicomWebSettings(endpoint=endpoint, server_type="Orthanc"), httpx.Client())
    assert source.name == name
    if address:
        assert source.endpoint_address(None) == address
    assert "pw" not in source.endpoint_address(None) and "=t" not in source.endpoint_address(None)


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """The logging set-up as it was: a handler left bound to this test's stream would swallow the
    output later tests read (configure_logging binds the stream it finds)."""
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


@pytest.mark.usefixtures("logging_restored")
def test_log_lines_carry_no_url_credentials() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        configure_logging("INFO", "json")  # binds the JSON lines to `out`
        get_logger("t").error("x", error="GET https://ana:pw@host/v2/changefeed?sig=S3CRET failed", n=1)
    line = json.loads(out.getvalue())
    assert line["error"] == "GET https://host/v2/changefeed?sig=*** failed" and line["n"] == 1


def test_map_never_writes_credentials_into_fhir() -> None:
    result = map_instances([], MappingOptions(), "https://ana:pw@dicom.test/v2?sig=S3CRET")
    text = json.dumps(result.resources)
    assert "pw@" not in text and "S3CRET" not in text and "https://dicom.test/v2" in text
