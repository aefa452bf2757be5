"""Builds the worker's parts from settings: store, FHIR client, one source per configured server."""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from sqlalchemy import Engine

from dicomcast.auth import build_auth
from dicomcast.config.settings import Settings, SourceSettings, TableStoreSettings
from dicomcast.dicom.models import ChangeSource
from dicomcast.dicom.sources import open_source
from dicomcast.errors import ConfigError, DicomcastError, StoreError
from dicomcast.fhir.client import Capabilities, FhirClient
from dicomcast.fhir.mapping import load_models
from dicomcast.fhir.mapping.types import FhirVersion, MappingOptions
from dicomcast.http import make_client
from dicomcast.logs import get_logger
from dicomcast.store import Store, is_migrated, make_engine, migrate
from dicomcast.worker import metrics
from dicomcast.worker.availability import Availability, wait_until_available
from dicomcast.worker.context import CarryOver, SyncContext, Tuning
from dicomcast.worker.retry import call_with_retry

STARTUP_BUDGET = timedelta(seconds=15)
log = get_logger("dicomcast.build")


def _count_fhir_request(request: httpx.Request, response: httpx.Response | None, seconds: float) -> None:
    status = str(response.status_code) if response is not None else "error"
    metrics.FHIR_REQUESTS.labels(request.method, status).inc()
    metrics.FHIR_LATENCY.labels(request.method, status).observe(seconds)
    metrics.FHIR_BYTES.inc(len(request.content) if request.content else 0)


def _renewed(server: str) -> None:
    metrics.TOKEN_RENEWALS.labels(server).inc()


YOUNG_COLLECTION_EVERY = 10_000  # container allocations net of frees between young collections (CPython: 700)


def fhir_client(settings: Settings, transport: httpx.BaseTransport | None = None) -> FhirClient:
    if not settings.fhir.endpoint:
        raise ConfigError(["Fhir:Endpoint: required (set env Fhir__Endpoint or Key Vault secret Fhir--Endpoint)"])
    auth = build_auth(settings.fhir.authentication, "Fhir", on_token_renewed=_renewed)
    # Bundles in flight, the next batch's lookups beside them (two searches of n/2 requests), the Endpoint.
    pool = 2 * settings.worker.max_concurrent_studies + 2
    client = make_client(
        settings.fhir.endpoint, auth=auth, transport=transport, pool_size=pool, on_request=_count_fhir_request
    )
    return FhirClient(client, searches_at_once=settings.worker.max_concurrent_studies // 2)  # two lookups at once


def change_source(
    source: SourceSettings, settings: Settings, transport: httpx.BaseTransport | None = None
) -> ChangeSource:
    web = source.dicom_web
    prefix = "DicomWeb" if not settings.sources else "Sources:*:DicomWeb"
    if not web.endpoint:
        raise ConfigError(
            [f"{prefix}:Endpoint: required (set env DicomWeb__Endpoint or Key Vault secret DicomWeb--Endpoint)"]
        )
    return open_source(
        web,
        auth=build_auth(web.authentication, "DicomWeb", on_token_renewed=_renewed),
        setting_prefix=prefix,
        batch_size=settings.worker.batch_size,
        ignore_parsing_errors=settings.dicom_cast.features.ignore_json_parsing_errors,
        transport=transport,
    )


def dicomcast_table(settings: Settings) -> TableStoreSettings | None:
    """DICOM Cast's Table Storage checkpoint applies to its own single source (`DicomWeb`)."""
    return settings.table_store if settings.table_store.configured and not settings.sources else None


def mapping_options(settings: Settings, version: FhirVersion) -> MappingOptions:
    load_models(version)
    features = settings.dicom_cast.features
    return MappingOptions(
        patient_system_id=settings.patient.patient_system_id or None,
        is_issuer_id_used=settings.patient.is_issuer_id_used,
        issuer_systems=dict(settings.patient.issuer_systems),
        default_timezone=settings.worker.default_timezone,
        enforce_validation=features.enforce_validation_of_tag_values,
        generate_observations=features.generate_observations,
        fhir_version=version,
    )


def open_store(settings: Settings, *, migrate_store: bool = True) -> Store:
    """The store, brought to the newest schema first (idempotent; on PostgreSQL under an advisory
    lock, so replicas starting together do not race). `dicomcast migrate` does the same alone."""
    engine = make_engine(settings.store.connection_string)
    if migrate_store and not is_migrated(engine):
        migrate(engine)
    return Store(engine)


def _store_engine(settings: Settings) -> Engine:
    """The engine of Store:ConnectionString; a URL no driver can use is configuration (exit 78)."""
    try:
        return make_engine(settings.store.connection_string)
    except StoreError as exc:
        raise ConfigError(
            [
                f"{exc}; set env Store__ConnectionString or Key Vault secret Store--ConnectionString "
                "to a sqlite:/// or postgresql+psycopg:// URL"
            ]
        ) from None


def _migrated_store(engine: Engine) -> Store:
    if not is_migrated(engine):
        migrate(engine)
    return Store(engine)


@dataclass
class Parts:
    store: Store
    fhir: FhirClient
    capabilities: Capabilities
    contexts: list[SyncContext] = field(default_factory=list)

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.source.close()
        self.fhir.http.close()
        self.store.close()


def build(settings: Settings, stop_event: threading.Event | None = None, *, verify: bool = True) -> Parts:
    """Everything `run` needs. The FHIR server's capabilities are checked first and, with `verify`,
    every source's feed is read once, so a wrong endpoint or credential is one clear error at start-up."""
    event = stop_event or threading.Event()
    store = open_store(settings)
    fhir = fhir_client(settings)
    capabilities = call_with_retry(fhir.capabilities, max_attempts=3, budget=STARTUP_BUDGET, stop_event=event)
    options = mapping_options(settings, capabilities.version)
    contexts = [
        _context(change_source(source, settings), settings, fhir, store, options, event)
        for source in settings.effective_sources()
    ]
    parts = Parts(store, fhir, capabilities, contexts)
    if verify:
        _verify_sources(contexts, event)
    return parts


def build_when_available(settings: Settings, stop_event: threading.Event, availability: Availability) -> Parts:
    """What `run` needs, waiting (capped exponential backoff, availability.py) for the store and the
    FHIR server instead of failing: a deployment's dependencies and role assignments come up in any
    order. Settings are checked first (ConfigError, exit 78); a stop request raises StopRequested.
    The sources are not read here: each cycle reads its own and a failing one waits on its own."""
    engine = _store_engine(settings)
    sources = [change_source(source, settings) for source in settings.effective_sources()]
    fhir = fhir_client(settings)
    try:
        store = wait_until_available("store", lambda: _migrated_store(engine), availability, stop_event)
        capabilities = wait_until_available("FHIR server", fhir.capabilities, availability, stop_event)
    except BaseException:
        for source in sources:
            source.close()
        fhir.http.close()
        engine.dispose()
        raise
    options = mapping_options(settings, capabilities.version)
    contexts = [_context(source, settings, fhir, store, options, stop_event) for source in sources]
    return Parts(store, fhir, capabilities, contexts)


def _context(
    source: ChangeSource,
    settings: Settings,
    fhir: FhirClient,
    store: Store,
    options: MappingOptions,
    event: threading.Event,
) -> SyncContext:
    return SyncContext(
        source=source,
        fhir=fhir,
        store=store,
        options=options,
        tuning=Tuning(
            max_concurrent_studies=settings.worker.max_concurrent_studies,
            max_batch_entries=settings.worker.max_batch_entries,
            max_batch_bytes=settings.worker.max_batch_bytes,
            max_bundle_entries=settings.worker.max_bundle_entries,
            max_bundle_bytes=settings.worker.max_bundle_bytes,
            retry_attempts=settings.retry.max_attempts,
            retry_budget=settings.retry.total_retry_duration,
        ),
        stop_event=event,
        carry_over=CarryOver(dicomcast_table(settings)),
    )


def tune_collector() -> None:
    """Called once per process, after `build`.

    What start-up built (modules, the FHIR models, settings: about 200,000 objects) lives as long as
    the process. Moved out of the cyclic collector's sight (`gc.freeze`, after a collection so no
    garbage is kept), it is no longer scanned by every full collection (94 ms each before, 15 ms after,
    in a batch of 1,000 one-instance studies).

    A batch builds hundreds of thousands of objects that live until it is written. CPython collects
    the young generation whenever 700 more container objects were allocated than freed, and each
    collection scans them again: about 150 young, 13 middle and a full collection ran per batch of
    1,000 one-instance studies (measured: 34 to 90 ms of the batch's 400 to 500 ms of CPU). At
    10,000, about ten young ones (8 to 20 ms). Cycles (tracebacks, a client's reference loops) are
    still collected, only in larger steps."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])


def _verify_sources(contexts: list[SyncContext], event: threading.Event) -> None:
    """Read every source's feed once. With one source, a failure is the start-up error; with
    several, a failing source is logged and retried every cycle while the others sync."""
    for ctx in contexts:
        try:
            call_with_retry(ctx.source.latest, max_attempts=3, budget=STARTUP_BUDGET, stop_event=event)
        except DicomcastError as exc:
            if len(contexts) == 1:
                raise
            log.error("source unavailable at start-up; the others go on", source=ctx.source.name, error=str(exc))
