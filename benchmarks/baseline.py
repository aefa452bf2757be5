"""(b) A DICOM Cast-style baseline: the archived C# worker's request pattern, in Python.

As DICOM Cast did: read the feed 10 entries at a time (v1, `ChangeFeedProcessor.DefaultLimit`);
then, strictly serially, per instance: search Endpoint, search Patient, search ImagingStudy, and send
one transaction holding the whole (growing) ImagingStudy and, when changed, the Patient. The
resources come from dicomcast's own pure mapping (one entry merged into what was found), so both
sides send the same content. New resources are PUT at their ids, which is no slower for the server
than DICOM Cast's conditional creates: the baseline is, if anything, flattered.
"""

from __future__ import annotations

from typing import Any

from benchmarks.measure import RequestCounter, Result, Stopwatch, peak_rss_mb
from dicomcast.config.settings import DicomWebSettings
from dicomcast.dicom.azure import AzureChangeFeedSource
from dicomcast.dicom.models import ChangeEntry
from dicomcast.fhir.client import FhirClient, put_entry
from dicomcast.fhir.mapping import endpoint_resource, map_study, patient_key
from dicomcast.fhir.mapping.ids import study_token
from dicomcast.fhir.mapping.terminology import ENDPOINT_CONNECTION_TYPE
from dicomcast.fhir.mapping.types import MappingOptions, SourceContext, StudyInput
from dicomcast.http import make_client
from dicomcast.worker.study_write import transaction_entries

DICOM_CAST_PAGE = 10


class DicomCastStyle:
    def __init__(
        self, fhir: FhirClient, source: AzureChangeFeedSource, options: MappingOptions, limit: int = 0
    ) -> None:
        self.fhir = fhir
        self.source = source
        self.options = options
        self.limit = limit  # stop after this many instances (0: none)

    def sync(self) -> int:
        """Read the feed until caught up (or `limit` instances); returns the number synced."""
        cursor, synced = None, 0
        while True:
            page = self.source.read_page(cursor)
            for entry in page.entries:
                self.sync_instance(entry)
                synced += 1
                if synced == self.limit:
                    return synced
            cursor = page.next_cursor
            if page.caught_up:
                return synced

    def sync_instance(self, entry: ChangeEntry) -> None:
        address = self.source.endpoint_address(entry.partition)
        name = f"DICOM WADO-RS endpoint {address}"
        endpoints = self.fhir.search(
            "Endpoint", {"name": name, "connection-type": f"{ENDPOINT_CONNECTION_TYPE}|dicom-wado-rs"}
        )
        key = patient_key(entry.metadata or {}, self.options)
        patients = self.fhir.search("Patient", {"identifier": key.search_token()}) if key else []
        studies = self.fhir.search("ImagingStudy", {"identifier": study_token(entry.study_uid)})
        endpoint = endpoint_resource(address, name, self.options)
        output = map_study(
            StudyInput(
                entry.study_uid,
                entry.partition,
                [entry],
                studies[0] if studies else None,
                {key: patients[0]} if key and patients else {},
            ),
            SourceContext(address, f"Endpoint/{endpoint['id']}"),
            self.options,
        )
        planned: list[dict[str, Any]] = [] if endpoints else [put_entry(endpoint, if_match=None)]
        planned += transaction_entries(output)
        if planned:
            self.fhir.transaction(planned)


def run_baseline(shape: str, dicom_root: str, fhir_url: str, limit: int = 0) -> Result:
    """`dicom_root` is the service root without API version (the baseline reads v1, as DICOM Cast).
    With `limit`, only the feed's first `limit` instances: its rate there can only flatter it, as
    its writes grow with the studies it rewrites instance by instance."""
    counter = RequestCounter()
    fhir = FhirClient(make_client(fhir_url, pool_size=1, on_request=counter))
    source = AzureChangeFeedSource(
        DicomWebSettings(endpoint=f"{dicom_root}/v1"), batch_size=DICOM_CAST_PAGE, client=make_client("", pool_size=1)
    )
    try:
        with Stopwatch() as watch:
            synced = DicomCastStyle(fhir, source, MappingOptions(), limit).sync()
    finally:
        fhir.http.close()
        source.close()
    return Result(
        "baseline", shape, synced, watch.seconds, counter.requests, counter.bytes, peak_rss_mb(), watch.cpu_seconds
    )
