"""Prometheus metrics of the worker (served on DicomCastWorker:HttpPort /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

ENTRIES = Counter(
    "dicomcast_entries_total",
    "Change-feed entries handled, by action and outcome",
    ["source", "action", "outcome"],
    registry=REGISTRY,
)
INSTANCES = Counter(
    "dicomcast_instances_synced_total",
    "Instances whose change reached FHIR, by action",
    ["source", "action"],
    registry=REGISTRY,
)
FAILURES = Counter(
    "dicomcast_failures_total", "Entries recorded as failures, by class", ["source", "failure_class"], registry=REGISTRY
)
PATIENT_WARNINGS = Counter(
    "dicomcast_patient_warnings_total",
    "Patient identity events: demographics kept against a different study's "
    "(patient-demographics-conflict), a second issuer's own Patient made (patient-issuer-split)",
    ["source", "kind"],
    registry=REGISTRY,
)
STUDIES = Counter("dicomcast_study_writes_total", "FHIR transactions written per study", ["source"], registry=REGISTRY)
BUNDLES = Counter(
    "dicomcast_bundles_written_total",
    "FHIR transactions written, each for one or several studies",
    ["source"],
    registry=REGISTRY,
)
FHIR_LATENCY = Histogram(
    "dicomcast_fhir_request_seconds", "FHIR request latency", ["method", "status"], registry=REGISTRY
)
FHIR_REQUESTS = Counter("dicomcast_fhir_requests_total", "FHIR requests sent", ["method", "status"], registry=REGISTRY)
FHIR_BYTES = Counter("dicomcast_fhir_request_bytes_total", "Bytes sent to FHIR in request bodies", registry=REGISTRY)
LAG_SEQUENCES = Gauge(
    "dicomcast_feed_lag_sequences", "Latest feed sequence minus the checkpoint", ["source"], registry=REGISTRY
)
LAG_SECONDS = Gauge("dicomcast_feed_lag_seconds", "Age of the newest unsynced change", ["source"], registry=REGISTRY)
CHECKPOINT = Gauge("dicomcast_checkpoint_sequence", "Sequence of the stored checkpoint", ["source"], registry=REGISTRY)
TOKEN_RENEWALS = Counter("dicomcast_token_renewals_total", "Access tokens obtained", ["server"], registry=REGISTRY)
CYCLE_OK = Gauge(
    "dicomcast_last_cycle_success", "1 when the last cycle of the source succeeded", ["source"], registry=REGISTRY
)
