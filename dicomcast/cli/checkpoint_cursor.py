"""What `dicomcast checkpoint set SOURCE latest` and `checkpoint import-dicomcast` compute (checkpoint.py
writes the result): the source's own cursor for the feed's end, or for DICOM Cast's checkpoint."""

from __future__ import annotations

from dicomcast.config.settings import Settings
from dicomcast.dicom.azure import AzureChangeFeedSource
from dicomcast.dicom.azure_handover import cursor_after_sequence, latest_cursor
from dicomcast.dicom.models import ChangeSource
from dicomcast.dicomcast_table import describe, read_sync_state
from dicomcast.errors import ConfigError


def latest_cursor_of(settings: Settings, name: str) -> str | None:
    source = _source(settings, name)
    try:
        if isinstance(source, AzureChangeFeedSource):
            return latest_cursor(source)
        sequence = source.latest().sequence
        return str(sequence) if sequence else None
    finally:
        source.close()


def import_dicomcast(settings: Settings, name: str | None) -> tuple[str, str | None, int]:
    """(source name, its cursor after DICOM Cast's SyncedSequence, that sequence)."""
    table = settings.table_store
    if not table.configured:
        raise ConfigError(
            [
                "TableStore:ConnectionString or TableStore:EndpointUri is needed to read DICOM Cast's "
                "checkpoint (set env TableStore__ConnectionString or Key Vault secret TableStore--ConnectionString)"
            ]
        )
    source = _source(settings, name)
    try:
        if not isinstance(source, AzureChangeFeedSource):
            raise ConfigError([f"{source.name}: DICOM Cast read the Azure DICOM service's change feed only"])
        state = read_sync_state(table)
        if state is None:
            raise ConfigError(
                [f"no DICOM Cast checkpoint in {describe(table)} (row SyncStatePartitionKey/SyncStateRowKey)"]
            )
        return source.name, cursor_after_sequence(source, state.sequence), state.sequence
    finally:
        source.close()


def _source(settings: Settings, name: str | None) -> ChangeSource:
    from dicomcast.worker.build import change_source

    sources = [change_source(item, settings) for item in settings.effective_sources()]
    names = ", ".join(s.name for s in sources)
    chosen = next((s for s in sources if name is None or s.name == name), None)
    if name is None and len(sources) > 1:
        chosen = None
    for other in sources:
        if other is not chosen:
            other.close()
    if chosen is None:
        raise ConfigError([f"name one of the configured sources: {names}"])
    return chosen
