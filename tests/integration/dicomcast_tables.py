"""DICOM Cast's Table Storage as DICOM Cast left it, written with the real azure-data-tables client
(only the tests write here; dicomcast only reads): its sync-state row, and what it looks like later."""

from __future__ import annotations

from typing import Any

from azure.data.tables import EdmType, EntityProperty, TableServiceClient

SYNC_STATE = "SyncStateTable"


def write_sync_state(connection_string: str, sequence: int, prefix: str = "", **options: Any) -> None:
    """DICOM Cast's `TableSyncStateStore` upsert: PartitionKey/RowKey constants, Int64 SyncedSequence."""
    with TableServiceClient.from_connection_string(connection_string, **options) as service:
        table = service.create_table_if_not_exists(f"{prefix}{SYNC_STATE}")
        table.upsert_entity(
            {
                "PartitionKey": "SyncStatePartitionKey",
                "RowKey": "SyncStateRowKey",
                "SyncedSequence": EntityProperty(sequence, EdmType.INT64),
            }
        )


def tables_and_rows(connection_string: str, **options: Any) -> dict[str, list[dict[str, Any]]]:
    """Every table with its entities and their ETags: to show nothing was written."""
    with TableServiceClient.from_connection_string(connection_string, **options) as service:
        out: dict[str, list[dict[str, Any]]] = {}
        for table in service.list_tables():
            client = service.get_table_client(table.name)
            out[table.name] = [{**entity, "etag": entity.metadata["etag"]} for entity in client.list_entities()]
        return out
