"""DICOM Cast's checkpoint in Azure Table Storage, read once and never written.

DICOM Cast kept its position in table `{TableStore:TableNamePrefix}SyncStateTable`, entity
PartitionKey `SyncStatePartitionKey`, RowKey `SyncStateRowKey`, Int64 property `SyncedSequence`
(the last change-feed v1 sequence it handled). It reached the account with
`TableStore:ConnectionString`, or without one with `TableStore:EndpointUri` and a managed identity
(`TableStore:ClientId` picks a user-assigned one). Only `get_entity` is called here: no table is
created, no entity written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from dicomcast.config.keyvault import uses_managed_identity
from dicomcast.config.settings import TableStoreSettings
from dicomcast.errors import AuthError, ConfigError, PermanentUpstreamError, TransientUpstreamError

SYNC_STATE_TABLE = "SyncStateTable"
PARTITION_KEY = "SyncStatePartitionKey"
ROW_KEY = "SyncStateRowKey"
SYNCED_SEQUENCE = "SyncedSequence"
SERVICE = "DICOM Cast Table Storage"


@dataclass(frozen=True)
class DicomCastSyncState:
    sequence: int
    table: str
    synced_at: datetime | None  # the entity's Timestamp: when DICOM Cast last wrote it


def table_name(settings: TableStoreSettings) -> str:
    return f"{settings.table_name_prefix or ''}{SYNC_STATE_TABLE}"


def read_sync_state(settings: TableStoreSettings) -> DicomCastSyncState | None:
    """DICOM Cast's last synced sequence; None when its table or row does not exist."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    client = _table_client(settings)
    try:
        with client:
            entity = client.get_entity(partition_key=PARTITION_KEY, row_key=ROW_KEY)
    except ResourceNotFoundError:
        return None
    except AzureError as exc:
        raise _error(exc, settings) from None
    return DicomCastSyncState(_sequence(entity, settings), table_name(settings), _timestamp(entity))


def describe(settings: TableStoreSettings) -> str:
    """Where the table is, without the account key: `table X at https://account.table...`."""
    return f"table {table_name(settings)} at {_account_url(settings)}"


def _table_client(settings: TableStoreSettings) -> Any:
    from azure.data.tables import TableClient

    connection = settings.connection_string.get_secret_value().strip() if settings.connection_string else ""
    options = _tls_options()
    if connection:
        try:
            return TableClient.from_connection_string(connection, table_name=table_name(settings), **options)
        except ValueError:
            raise ConfigError(
                [
                    "TableStore:ConnectionString: not an Azure Storage connection string (set env "
                    "TableStore__ConnectionString or Key Vault secret TableStore--ConnectionString)"
                ]
            ) from None
    return TableClient(
        endpoint=_checked_endpoint(settings.endpoint_uri or ""),
        table_name=table_name(settings),
        credential=_credential(settings.client_id),
        **options,
    )


def _checked_endpoint(uri: str) -> str:
    parts = urlsplit(uri.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(
            [
                f"TableStore:EndpointUri {uri!r}: a managed identity needs the account's https table "
                "endpoint, e.g. https://<account>.table.core.windows.net (set env TableStore__EndpointUri "
                "or Key Vault secret TableStore--EndpointUri)"
            ]
        )
    return uri.strip()


def _credential(client_id: str | None) -> Any:
    """As DICOM Cast: a managed identity (ClientId picks a user-assigned one). Where the platform
    exposes no identity endpoint, DefaultAzureCredential also finds IMDS, a workload identity or
    a developer's login."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if uses_managed_identity(os.environ):
        return ManagedIdentityCredential(client_id=client_id or None)
    return DefaultAzureCredential(managed_identity_client_id=client_id or None)


def _tls_options() -> dict[str, Any]:
    """A private CA (a test account, a proxy) is trusted through REQUESTS_CA_BUNDLE or SSL_CERT_FILE."""
    if not os.environ.get("REQUESTS_CA_BUNDLE") and os.environ.get("SSL_CERT_FILE"):
        return {"connection_verify": os.environ["SSL_CERT_FILE"]}
    return {}


def _sequence(entity: Any, settings: TableStoreSettings) -> int:
    raw = entity.get(SYNCED_SEQUENCE)
    value = getattr(raw, "value", raw)  # Int64 may come back wrapped in an EntityProperty
    try:
        sequence = int(value)
    except (TypeError, ValueError):
        sequence = -1
    if sequence < 0:
        raise PermanentUpstreamError(SERVICE, f"{describe(settings)}: {SYNCED_SEQUENCE} is not a sequence number")
    return sequence


def _timestamp(entity: Any) -> datetime | None:
    metadata = getattr(entity, "metadata", None) or {}
    stamp = metadata.get("timestamp")
    return stamp if isinstance(stamp, datetime) else None


def _account_url(settings: TableStoreSettings) -> str:
    connection = settings.connection_string.get_secret_value() if settings.connection_string else ""
    fields = dict(part.split("=", 1) for part in connection.split(";") if "=" in part)
    lowered = {key.strip().lower(): value.strip() for key, value in fields.items()}
    if lowered.get("tableendpoint"):
        return lowered["tableendpoint"]
    if lowered.get("accountname"):
        suffix = lowered.get("endpointsuffix", "core.windows.net")
        return f"{lowered.get('defaultendpointsprotocol', 'https')}://{lowered['accountname']}.table.{suffix}"
    if lowered.get("usedevelopmentstorage"):
        return "the local storage emulator"
    return (settings.endpoint_uri or "").split("?")[0]


def _error(exc: Exception, settings: TableStoreSettings) -> Exception:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

    where = describe(settings)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        how = (
            "TableStore:ConnectionString (its account key)"
            if settings.connection_string
            else ("the managed identity (TableStore:ClientId) and its 'Storage Table Data Reader' role")
        )
        return AuthError(f"{SERVICE}: {where} refused access (HTTP {status or '-'}); check {how}")
    if isinstance(exc, ServiceRequestError) or (isinstance(exc, HttpResponseError) and (status or 500) >= 500):
        return TransientUpstreamError(
            SERVICE, f"{where} could not be read ({status or type(exc).__name__})", status=status
        )
    return PermanentUpstreamError(
        SERVICE, f"{where} could not be read (HTTP {status or type(exc).__name__})", status=status
    )
