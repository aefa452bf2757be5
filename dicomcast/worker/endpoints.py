"""The FHIR Endpoint of each source (partition): found or written once per process.

DICOM Cast's Endpoint (a server-assigned id, under one of its names) is adopted; dicomcast's own has
an id derived from the address, and is rewritten only when it differs from what it should say.

The first batch of a partition does not wait for all of it:
* `prefetch` starts the check when a page first names the partition, beside the batch's next pages
  (a source that is down or idle gets no Endpoint: it names none);
* the batch maps its studies as soon as the Endpoint's id is decided (`early_source_context`);
* the Endpoint, when it must be written, travels at the head of the batch's first transaction
  (`EndpointCache.take_unwritten`, bundles.py): one round trip fewer, and the transaction lands whole or not at
  all, so the studies that refer to it never land without it;
* nothing else of the batch is sent to FHIR before that write has landed (`ensure_written`: it
  waits for the transaction carrying it, and writes it alone if that transaction failed), so no
  ImagingStudy ever refers to an Endpoint that does not exist.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from functools import partial
from typing import Any, TypeVar

from dicomcast.dicom.models import ChangeEntry
from dicomcast.errors import TransientUpstreamError
from dicomcast.fhir.mapping import endpoint_resource, legacy
from dicomcast.fhir.mapping.types import Resource, SourceContext
from dicomcast.worker import lookups
from dicomcast.worker.context import SyncContext

T = TypeVar("T")


def source_context(ctx: SyncContext, partition: str | None) -> SourceContext:
    """The partition's context, once its Endpoint exists in FHIR."""
    return _context(ctx, partition, ensure_endpoint(ctx, partition))


def early_source_context(ctx: SyncContext, partition: str | None) -> SourceContext:
    """The partition's context as soon as its Endpoint's id is decided (its write may be in flight:
    `ensure_written` before anything that refers to it is sent)."""
    decided = ctx.endpoints.decided(partition)
    return _context(ctx, partition, decided if decided is not None else ensure_endpoint(ctx, partition))


def decided_context(ctx: SyncContext, partition: str | None) -> SourceContext | None:
    """The partition's context if its Endpoint's id is decided already, else None (nothing is asked)."""
    decided = ctx.endpoints.decided(partition)
    return _context(ctx, partition, decided) if decided is not None else None


def ensure_written(ctx: SyncContext, contexts: Mapping[str | None, SourceContext]) -> None:
    """Each context's Endpoint exists in FHIR under the id it names (waits for a write in flight,
    or makes it, with retries). An id that changed meanwhile (the check was made again after a failed
    write, and found another Endpoint) fails the batch: it is mapped again in the next cycle."""
    for partition, context in contexts.items():
        endpoint_id = ensure_endpoint(ctx, partition)
        if context.endpoint_reference != f"Endpoint/{endpoint_id}":
            raise TransientUpstreamError(
                "FHIR server", f"the Endpoint of {context.source_uri} changed while its batch was mapped"
            )


def prefetch(ctx: SyncContext, entries: Sequence[ChangeEntry]) -> None:
    """Check the Endpoints of a page's partitions beside the rest of its batch's read, the first time
    each is seen (a write they need is left to the batch's first transaction). Errors are the batch's
    to report: this tries once, without retries (the cache's lock would hold the batch while they
    ran), and the batch asks the cache again, with its retries."""
    partitions = ctx.endpoints.first_seen({entry.partition for entry in entries})
    if not partitions:
        return
    for partition in partitions:
        ctx.endpoints.deciding(partition)

    def run() -> None:
        for partition in partitions:
            try:
                with contextlib.suppress(Exception):  # the batch meets the same error again, where it is handled
                    ensure_endpoint(ctx, partition, once=True)
            finally:
                ctx.endpoints.settled(partition)

    try:
        threading.Thread(target=copy_context().run, args=(run,), name="endpoint", daemon=True).start()
    except RuntimeError:  # no thread to be had: the batch checks them itself, and must not wait for this
        for partition in partitions:
            ctx.endpoints.settled(partition)


def ensure_endpoint(ctx: SyncContext, partition: str | None, *, once: bool = False) -> str:
    """The source's (partition's) Endpoint exists in FHIR: read once per process, written if missing.
    `once` (the check beside a batch's read): each request tried once, without the retry policy, and
    a write it needs is left to the batch's first transaction."""
    endpoint_id = ctx.endpoints.get(
        partition, partial(_write_endpoint, ctx, partition, _once if once else ctx.retry, defer=once)
    )
    if not once:
        ctx.endpoints.write_unwritten(partition, lambda endpoint: ctx.retry(lambda: ctx.fhir.put(endpoint)))
    return endpoint_id


def _context(ctx: SyncContext, partition: str | None, endpoint_id: str) -> SourceContext:
    return SourceContext(
        source_uri=ctx.source.endpoint_address(partition), endpoint_reference=f"Endpoint/{endpoint_id}"
    )


def _once(fn: Callable[[], T]) -> T:
    return fn()


def _write_endpoint(
    ctx: SyncContext, partition: str | None, call: Callable[[Callable[[], Any]], Any], *, defer: bool
) -> str:
    address = ctx.source.endpoint_address(partition)
    wanted = endpoint_resource(address, f"{legacy.ENDPOINT_NAME} {address}", ctx.options)
    names = (str(wanted["name"]), *legacy.dicom_cast_endpoint_names(address))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="endpoint") as pool:  # one round trip, not two
        by_name = pool.submit(copy_context().run, call, lambda: lookups.wado_endpoint(ctx.fhir, names))
        current = call(lambda: ctx.fhir.read("Endpoint", str(wanted["id"])))
        if current is None:  # one with a server id: adopted (written before by DICOM Cast, or by us for it)
            current = by_name.result()
            wanted["id"] = current["id"] if current is not None else wanted["id"]
    ctx.endpoints.decide(partition, str(wanted["id"]))
    if current is None or _differs(current, wanted):
        if defer:
            ctx.endpoints.unwritten(partition, wanted)
        else:
            call(lambda: ctx.fhir.put(wanted))
    return str(wanted["id"])


def _differs(current: Resource, wanted: Resource) -> bool:
    return any(current.get(k) != v for k, v in wanted.items() if k not in ("meta", "id"))
