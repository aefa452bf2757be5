"""DICOM Cast's checkpoint carried over: its Table Storage in Azurite (connection string, and managed
identity over https), a version-less DicomWeb:Endpoint, the move from v1 to v2, and the operator's
commands. What the Azure test server served proves that nothing at or before the checkpoint is read."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomcast.store import Store, make_engine
from tests import peers
from tests.integration.azure_worker import azure_env, sync_once
from tests.integration.dicomcast_tables import tables_and_rows, write_sync_state
from tests.integration.sync_helpers import dicomcast, snapshot
from tests.servers import azurite
from tests.servers.azure_dicom import AzureDicomServer
from tests.servers.azure_dicom_data import generate_studies, uids
from tests.servers.fixtures import managed_identity, tls_cert  # noqa: F401 - fixtures
from tests.servers.mi_token import MiTokenServer

pytestmark = pytest.mark.integration
PREFIX = "cast"


@pytest.fixture
def azure() -> Iterator[AzureDicomServer]:
    with AzureDicomServer() as server:
        yield server


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[azurite.Azurite]:
    why = azurite.available()
    if why:
        pytest.skip(f"Azurite unavailable: {why}")
    with azurite.start(tmp_path) as server:
        yield server


def _studies(fhir: peers.Peer) -> set[str]:
    found = set()
    for study in snapshot(fhir)["ImagingStudy"].values():
        for identifier in study["identifier"]:
            if identifier.get("system") == "urn:dicom:uid":
                found.add(identifier["value"].removeprefix("urn:oid:"))
    return found


def _feed(azure: AzureDicomServer) -> tuple[list[str], int]:
    """Three studies of four instances: sequences 1-12. DICOM Cast had done the first study and a
    half (SyncedSequence 6)."""
    instances = generate_studies(3, 4, seed=13)
    azure.store_all(instances)
    order = list(dict.fromkeys(uids(i)[0] for i in instances))
    return order, 6


def _table_env(azure_root: str, fhir: peers.Peer, store: Path, connection: str) -> dict[str, str]:
    return azure_env(
        azure_root,
        fhir.url,
        store,
        TableStore__ConnectionString=connection,
        TableStore__TableNamePrefix=PREFIX,
    )


@pytest.mark.parametrize("version", ["", "/v1", "/v2"])
def test_dicomcast_checkpoint_is_carried_over(
    azure: AzureDicomServer,
    tables: azurite.Azurite,
    fhir_server: peers.Peer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    version: str,
) -> None:
    studies, synced = _feed(azure)
    write_sync_state(tables.connection_string, synced, PREFIX)
    before = tables_and_rows(tables.connection_string)
    env = _table_env(f"{azure.url}{version}", fhir_server, tmp_path / "s.db", tables.connection_string)

    assert sync_once(env).ok
    read = azure.sequences_read_with_metadata()
    assert read and min(read) == synced + 1, f"entries at or before {synced} were read again: {read}"
    assert sorted(set(read)) == list(range(synced + 1, 13))
    assert _studies(fhir_server) == set(studies[1:])  # study 1 (sequences 1-4) was DICOM Cast's
    assert tables_and_rows(tables.connection_string) == before  # nothing written to DICOM Cast's tables

    out = capsys.readouterr().out
    assert out.count("checkpoint carried over from DICOM Cast") == 1
    assert "AccountKey" not in out and azurite.ACCOUNT_KEY not in out
    name = f"azure:{azure.url}/v{2 if version == '/v2' else 1}"
    assert Store(make_engine(f"sqlite:///{tmp_path / 's.db'}")).read_checkpoint(name) is not None

    # the next start has its own checkpoint: DICOM Cast's is not read or applied again
    azure.store_all(generate_studies(1, 2, seed=14))
    served = len(azure.served)
    assert sync_once(env).ok
    assert sorted(azure.sequences_read_with_metadata()[-2:]) == [13, 14]
    assert all(min(seqs, default=13) >= 13 for _, meta, seqs in azure.served[served:] if meta)
    assert "checkpoint carried over" not in capsys.readouterr().out


def test_no_dicomcast_row_starts_at_the_beginning(
    azure: AzureDicomServer,
    tables: azurite.Azurite,
    fhir_server: peers.Peer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    studies, _ = _feed(azure)
    env = _table_env(azure.url, fhir_server, tmp_path / "s.db", tables.connection_string)
    assert sync_once(env).ok
    assert _studies(fhir_server) == set(studies)
    assert "no DICOM Cast checkpoint found" in capsys.readouterr().out
    assert tables_and_rows(tables.connection_string) == {}  # not even the table was created


def test_unreachable_table_fails_the_cycle_instead_of_replaying(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    _feed(azure)
    closed = peers.free_port()
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={azurite.ACCOUNT};AccountKey={azurite.ACCOUNT_KEY};"
        f"TableEndpoint=http://127.0.0.1:{closed}/{azurite.ACCOUNT};"
    )
    env = _table_env(azure.url, fhir_server, tmp_path / "s.db", connection)
    report = sync_once(env)
    assert not report.ok and "DICOM Cast Table Storage" in (report.error or "")
    assert azure.sequences_read_with_metadata() == []  # nothing read from 0
    assert snapshot(fhir_server)["ImagingStudy"] == {}


def test_v1_checkpoint_moves_to_v2_without_replaying(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A DICOM Cast vault's version-less endpoint reads v1; set to /v2 later, the v1 cursor carries over."""
    azure.store_all(generate_studies(2, 3, seed=21))
    azure.skip_sequences(40)  # a gap in the sequence numbers
    azure.store_all(generate_studies(1, 2, seed=22))
    store = tmp_path / "s.db"
    assert sync_once(azure_env(azure.url, fhir_server.url, store)).ok
    last_v1 = max(azure.sequences_read_with_metadata())
    azure.store_all(generate_studies(1, 3, seed=23))
    served = len(azure.served)

    assert sync_once(azure_env(f"{azure.url}/v2", fhir_server.url, store)).ok
    after = [s for _, meta, seqs in azure.served[served:] if meta for s in seqs]
    assert sorted(after) == [last_v1 + 1, last_v1 + 2, last_v1 + 3]
    assert "checkpoint carried over from change feed v1" in capsys.readouterr().out
    assert len(_studies(fhir_server)) == 4


def test_v2_cursor_keeps_rows_committed_out_of_timestamp_order(
    azure: AzureDicomServer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    """A row's Timestamp is set before its commit: sequence 6 may carry an earlier time than 5.
    Imported at sequence 5, row 6 must still be read (5 may be read again: harmless)."""
    azure.store_all(generate_studies(2, 4, seed=31))
    rows = {row.sequence: row for row in azure.table.rows}
    rows[6].ticks = rows[5].ticks - 1
    store = tmp_path / "s.db"
    assert sync_once(azure_env(azure.url, fhir_server.url, store)).ok
    # Pretend v1 had stopped at 5: the v2 start must not skip 6.
    engine = make_engine(f"sqlite:///{store}")
    Store(engine).set_checkpoint(f"azure:{azure.url}/v1", "5")
    served = len(azure.served)
    assert sync_once(azure_env(f"{azure.url}/v2", fhir_server.url, store)).ok
    after = {s for _, meta, seqs in azure.served[served:] if meta for s in seqs}
    assert {6, 7, 8} <= after and not after & {1, 2, 3, 4}


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sig"


def test_table_read_with_managed_identity_over_https(
    azure: AzureDicomServer,
    fhir_server: peers.Peer,
    tmp_path: Path,
    tls_cert: tuple[Path, Path],  # noqa: F811
    managed_identity: MiTokenServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TableStore:EndpointUri + ClientId, as DICOM Cast's managed-identity mode. Azurite checks the
    bearer token's issuer, audience and lifetime (`--oauth basic`, https only), not its signature."""
    why = azurite.available()
    if why:
        pytest.skip(f"Azurite unavailable: {why}")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_cert[0]))
    now = int(time.time())
    claims = {"aud": "https://storage.azure.com", "iss": "https://sts.windows.net/test-tenant/", "iat": now - 60}
    managed_identity.queue = [_jwt({**claims, "nbf": now - 60, "exp": now + 3600}) for _ in range(5)]
    _, synced = _feed(azure)
    with azurite.start(tmp_path, tls=tls_cert) as tables:
        write_sync_state(tables.connection_string, synced, PREFIX, connection_verify=str(tls_cert[0]))
        env = azure_env(
            azure.url,
            fhir_server.url,
            tmp_path / "s.db",
            TableStore__EndpointUri=tables.endpoint,
            TableStore__ClientId="dicomcast-table-reader",
            TableStore__TableNamePrefix=PREFIX,
        )
        assert sync_once(env).ok
    assert min(azure.sequences_read_with_metadata()) == synced + 1
    (request,) = [r for r in managed_identity.requests if r.resource == "https://storage.azure.com"]
    assert request.client_id == "dicomcast-table-reader"


def _cli_env(azure_root: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith(("dicomweb__", "tablestore__"))}
    return {**env, **azure_env(azure_root, "http://127.0.0.1:9/fhir", tmp_path / "s.db"), **extra}


@pytest.mark.parametrize("version", [1, 2])
def test_operator_commands_import_dicomcast_and_set_latest(
    azure: AzureDicomServer, tables: azurite.Azurite, tmp_path: Path, version: int
) -> None:
    _, synced = _feed(azure)
    write_sync_state(tables.connection_string, synced, PREFIX)
    env = _cli_env(
        f"{azure.url}/v{version}",
        tmp_path,
        TableStore__ConnectionString=tables.connection_string,
        TableStore__TableNamePrefix=PREFIX,
    )
    name = f"azure:{azure.url}/v{version}"
    store = Store(make_engine(f"sqlite:///{tmp_path / 's.db'}"))

    result = dicomcast(["checkpoint", "import-dicomcast"], env)
    assert result.returncode == 0, result.stderr
    assert f"{name}: None -> " in result.stdout and "DICOM Cast SyncedSequence 6" in result.stdout
    imported = store.read_checkpoint(name)
    assert imported == "6" if version == 1 else imported is not None and imported.startswith("6@")
    assert azurite.ACCOUNT_KEY not in result.stdout + result.stderr

    result = dicomcast(["checkpoint", "set", name, "latest"], env)
    assert result.returncode == 0, result.stderr
    latest = store.read_checkpoint(name)
    assert latest == "12" if version == 1 else latest is not None and latest.startswith("12@")
    assert "checkpoint moved by operator" in result.stdout + result.stderr

    missing = dicomcast(["checkpoint", "import-dicomcast"], {**env, "TableStore__TableNamePrefix": "other"})
    assert (
        missing.returncode == 78
        and "no DICOM Cast checkpoint in table otherSyncStateTable" in missing.stdout + missing.stderr
    )  # JSON logs: stdout


def test_check_reads_the_dicomcast_checkpoint(tables: azurite.Azurite, tmp_path: Path) -> None:
    from dicomcast.checks import Status, run_checks

    environ = {"TableStore__ConnectionString": tables.connection_string, "TableStore__TableNamePrefix": PREFIX}
    (missing,) = [line for line in run_checks(environ=environ) if line.name.startswith("DICOM Cast checkpoint")]
    assert missing.status is Status.OK and "no sync-state row" in missing.detail
    write_sync_state(tables.connection_string, 4242, PREFIX)
    (line,) = [line for line in run_checks(environ=environ) if line.name.startswith("DICOM Cast checkpoint")]
    assert line.status is Status.OK and "SyncedSequence 4242" in line.detail
    assert f"{PREFIX}SyncStateTable" in line.name and azurite.ACCOUNT_KEY not in line.render()


@pytest.mark.parametrize("version", ["", "/v2"])
def test_dicomcast_checkpoint_inside_a_sequence_gap(
    azure: AzureDicomServer, tables: azurite.Azurite, fhir_server: peers.Peer, tmp_path: Path, version: str
) -> None:
    """DICOM Cast stepped over gaps by 10 (its SyncedSequence may name no entry): nothing after the
    gap is lost, nothing before it is read again."""
    azure.store_all(generate_studies(1, 3, seed=51))  # 1-3
    azure.skip_sequences(30)
    later = azure.store_all(generate_studies(1, 2, seed=52))  # 34-35
    write_sync_state(tables.connection_string, 13, PREFIX)  # inside the gap
    env = _table_env(f"{azure.url}{version}", fhir_server, tmp_path / "s.db", tables.connection_string)
    assert sync_once(env).ok
    assert sorted(azure.sequences_read_with_metadata()) == later
