"""Azure Monitor (Application Insights) through OpenTelemetry, only when asked for.

With `ApplicationInsights:ConnectionString` (also Azure's APPLICATIONINSIGHTS_CONNECTION_STRING) or
DICOM Cast's `ApplicationInsights:InstrumentationKey`, `configure` sets up azure-monitor-opentelemetry:
traces (`span(name, **attributes)`: one per page and per study, UIDs and counts only), outgoing
httpx calls as dependencies (URLs without their query string: FHIR searches carry patient ids),
the Prometheus metrics of `/metrics`, and the structlog lines as logs. Without either setting
nothing here imports or configures the SDK, and `span` does nothing.

Choices, each deliberate:
- Sampling: fixed ratio 1.0 (all spans). A worker makes one span per page and per study, so the
  volume is small, and the SDK's default rate-limited sampler may drop the few spans of a short
  `run --once`. `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG` still override it.
- Instrumentations: only httpx, ours (the SDK's others, Azure SDK tracing included, are off); live
  metrics and performance counters are off (they are other channels to other endpoints).
- Resource detectors: `otel` only unless OTEL_EXPERIMENTAL_RESOURCE_DETECTORS says otherwise; the
  SDK's Azure VM detector would probe the instance metadata service (169.254.169.254).
- Flush: at exit (also after `run --once`) every signal is flushed, within a bounded time.
The SDK's own statistics ("statsbeat") and its control-plane settings fetch are Microsoft's: turn
them off with APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL=true and APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED=true.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from importlib import metadata
from typing import Any

from dicomcast.config.settings import ApplicationInsightsSettings
from dicomcast.urls import redact_url

SERVICE_NAME = "dicomcast"
LOGGER_NAME = "dicomcast.telemetry"  # structlog lines are re-emitted here for the SDK's log handler
FLUSH_TIMEOUT_MS = 15_000
_INSTRUMENTATIONS = (
    "azure_sdk",
    "django",
    "fastapi",
    "flask",
    "httpx",
    "httpx2",
    "psycopg2",
    "requests",
    "urllib",
    "urllib3",
)
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

_lock = threading.Lock()
_tracer: Any = None  # set once configured; None means telemetry is off


def connection_string(settings: ApplicationInsightsSettings) -> str | None:
    """The connection string to use: ConnectionString, else `InstrumentationKey=<key>` (DICOM Cast)."""
    if settings.connection_string and settings.connection_string.get_secret_value().strip():
        return settings.connection_string.get_secret_value().strip()
    if settings.instrumentation_key and settings.instrumentation_key.get_secret_value().strip():
        return f"InstrumentationKey={settings.instrumentation_key.get_secret_value().strip()}"
    return None


def enabled() -> bool:
    return _tracer is not None


def configure(settings: ApplicationInsightsSettings) -> bool:
    """Set up Azure Monitor when a connection string or key is set; True when it was."""
    global _tracer
    connection = connection_string(settings)
    if connection is None:
        return False
    with _lock:
        if _tracer is not None:
            return True
        os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "otel")
        from azure.monitor.opentelemetry import configure_azure_monitor
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource

        options: dict[str, Any] = {}
        if not os.environ.get("OTEL_TRACES_SAMPLER"):
            options["sampling_ratio"] = 1.0
        configure_azure_monitor(
            connection_string=connection,
            resource=Resource.create({"service.name": SERVICE_NAME, "service.version": _version()}),
            logger_name=LOGGER_NAME,
            enable_live_metrics=False,
            enable_performance_counters=False,
            instrumentation_options={name: {"enabled": False} for name in _INSTRUMENTATIONS},
            **options,
        )
        _instrument_httpx()
        _observe_prometheus()
        _forward_logs()
        _tracer = trace.get_tracer("dicomcast", _version())
        atexit.register(flush)
        return True


Attribute = str | int | bool | None


def _ignore(**_: Attribute) -> None:
    return None


@contextlib.contextmanager
def span(name: str, **attributes: Attribute) -> Iterator[Callable[..., None]]:
    """A span around a unit of work (a page, a study); yields `note(**attributes)` to add results.
    Attributes are UIDs, sequences and counts: never PHI. A no-op while telemetry is off."""
    if _tracer is None:
        yield _ignore
        return
    with _tracer.start_as_current_span(name, attributes=_named(attributes)) as current:

        def note(**more: Attribute) -> None:
            current.set_attributes(_named(more))

        yield note


def finished_span(name: str, started_ns: int, **attributes: Attribute) -> None:
    """A span for work done since `started_ns` (time.time_ns()), whose results are known only now (a
    study mapped in one thread and written in another, with others in the same transaction)."""
    if _tracer is not None:
        _tracer.start_span(name, start_time=started_ns, attributes=_named(attributes)).end()


def _named(attributes: dict[str, Attribute]) -> dict[str, str | int | bool]:
    return {f"dicomcast.{key}": value for key, value in attributes.items() if value is not None}


def flush() -> None:
    """Export everything still buffered (spans, metrics, logs); bounded in time."""
    if _tracer is None:
        return
    from opentelemetry import _logs, metrics, trace

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            with contextlib.suppress(Exception):  # telemetry never fails the worker
                force_flush(FLUSH_TIMEOUT_MS)


def _version() -> str:
    try:
        return metadata.version("dicomcast")
    except metadata.PackageNotFoundError:
        return "0"


def _instrument_httpx() -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument(request_hook=_without_query)


def _without_query(span: Any, request: Any) -> None:
    """Dependencies keep scheme, host and path: a query (FHIR `identifier=...|<PatientID>`) may be PHI."""
    url = getattr(request, "url", None)
    if url is None or not span.is_recording():
        return
    text = redact_url(str(url).split("?", 1)[0].split("#", 1)[0])  # and no user info (urls.py)
    for key in ("url.full", "http.url"):
        span.set_attribute(key, text)


def _observe_prometheus() -> None:
    """The counters and gauges of `/metrics` as OpenTelemetry observables (read at each export);
    histograms as their `_count` and `_sum`."""
    from opentelemetry import metrics as otel_metrics

    from dicomcast.worker import metrics

    meter = otel_metrics.get_meter("dicomcast")
    for family in metrics.REGISTRY.collect():
        for suffix in _suffixes(family.type):
            name = f"{family.name}{suffix}"
            callback = _reader(family.name, name)
            if family.type == "gauge":
                meter.create_observable_gauge(name, callbacks=[callback], description=family.documentation)
            else:
                meter.create_observable_counter(name, callbacks=[callback], description=family.documentation)


def _suffixes(kind: str) -> tuple[str, ...]:
    return {"counter": ("_total",), "gauge": ("",), "histogram": ("_count", "_sum")}.get(kind, ())


def _reader(family_name: str, sample_name: str) -> Any:
    from opentelemetry.metrics import CallbackOptions, Observation

    from dicomcast.worker import metrics

    def read(_: CallbackOptions) -> Iterable[Observation]:
        for family in metrics.REGISTRY.collect():
            if family.name == family_name:
                for sample in family.samples:
                    if sample.name == sample_name:
                        yield Observation(sample.value, dict(sample.labels))

    return read


def _forward_logs() -> None:
    """structlog prints its lines itself; a processor re-emits each one to LOGGER_NAME, where the
    SDK's handler sends it (event and fields as attributes: the logging doctrine keeps PHI out)."""
    import structlog

    target = logging.getLogger(LOGGER_NAME)
    target.setLevel(logging.DEBUG)
    target.propagate = False  # not printed a second time by the root handler

    def forward(_: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        fields = {
            f"dicomcast.{k}": _plain(v) for k, v in event_dict.items() if k not in ("event", "level", "timestamp")
        }
        target.log(_LEVELS.get(method, logging.INFO), str(event_dict.get("event", "")), extra=fields)
        return event_dict

    processors = list(structlog.get_config()["processors"])
    structlog.configure(processors=[*processors[:-1], forward, processors[-1]])  # before the renderer


def _plain(value: Any) -> str | int | float | bool:
    return value if isinstance(value, str | int | float | bool) else str(value)
