"""Health and metrics listener (DicomCastWorker:HttpPort). Placeholder until the ops work lands."""

from __future__ import annotations

from typing import Any

from dicomcast.config.settings import WorkerSettings
from dicomcast.worker.state import WorkerState


def start_http_server_if_configured(settings: WorkerSettings, state: WorkerState, parts: Any) -> None:
    return None
