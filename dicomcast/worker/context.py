"""What the sync of one source needs, built once at start-up and shared by its threads."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta

from dicomcast.config.settings import TableStoreSettings
from dicomcast.dicom.models import ChangeSource
from dicomcast.fhir.client import FhirClient
from dicomcast.fhir.mapping.types import MappingOptions
from dicomcast.store import Store


@dataclass
class SyncContext:
    source: ChangeSource
    fhir: FhirClient
    store: Store
    options: MappingOptions
    max_concurrent_studies: int = 8
    max_batch_entries: int = 1000
    retry_attempts: int = 8
    retry_budget: timedelta = timedelta(minutes=2)
    stop_event: threading.Event = field(default_factory=threading.Event)
    endpoint_ids: dict[str | None, str] = field(default_factory=dict)  # partition -> Endpoint id (process cache)
    endpoint_lock: threading.Lock = field(default_factory=threading.Lock)
    # DICOM Cast's Table Storage, whose checkpoint seeds this source's first start (carry_over.py)
    dicomcast_table: TableStoreSettings | None = None
    carry_over_done: bool = False
