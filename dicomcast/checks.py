"""`dicomcast check`: one line per dependency, exit 0 only when every one passes.

    ok    settings: valid
    skip  Key Vault: KeyVault:Endpoint not set
    ok    DICOM token (orthanc:http://...): Basic credentials, no token to obtain
    ok    DICOM change feed (orthanc:http://...): Orthanc /changes reachable, latest sequence 42
    skip  FHIR token: authentication off
    ok    FHIR server (http://.../fhir): FHIR 4.0.1 (R4), transaction supported
    ok    store (sqlite:////data/dicomcast.db): reachable, schema migrated

Read-only: nothing is written to FHIR, the DICOM server or the store (a missing SQLite file is
reported, not created). Lines name settings and URLs (without credentials), never secret values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy.engine import make_url

from dicomcast.auth import build_auth
from dicomcast.config import LoadedSettings, load_settings
from dicomcast.config.settings import AuthenticationSettings, AuthenticationType, Settings, SourceSettings
from dicomcast.errors import ConfigError, DicomcastError, ExitCode, StoreError
from dicomcast.store import is_migrated, make_engine
from dicomcast.store.db import sqlite_file_missing
from dicomcast.urls import redact_text


class Status(StrEnum):
    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckLine:
    name: str
    status: Status
    detail: str
    exit_code: ExitCode = ExitCode.OK

    def render(self) -> str:
        return f"{self.status.value:<5} {self.name}: {self.detail}"


def ok(name: str, detail: str) -> CheckLine:
    return CheckLine(name, Status.OK, detail)


def skip(name: str, detail: str) -> CheckLine:
    return CheckLine(name, Status.SKIP, detail)


def failed(name: str, exc: BaseException) -> CheckLine:
    if isinstance(exc, ConfigError):
        return CheckLine(name, Status.FAIL, redact_text("; ".join(exc.problems)), exc.exit_code)
    if isinstance(exc, DicomcastError):
        return CheckLine(name, Status.FAIL, redact_text(str(exc)), exc.exit_code)
    return CheckLine(name, Status.FAIL, f"unexpected {type(exc).__name__}", ExitCode.UNEXPECTED)


def exit_code(lines: Iterable[CheckLine]) -> ExitCode:
    """The first failure's code (78 settings, 77 credentials, 69 unreachable), else 0."""
    return next((line.exit_code for line in lines if line.status is Status.FAIL), ExitCode.OK)


def safe_url(url: str) -> str:
    """The URL without user info or query string (either may hold a secret or an identifier)."""
    parts = urlsplit(url)
    if not parts.scheme:
        return url.split("?", 1)[0]
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


# -- settings and Key Vault ----------------------------------------------------------------------
SecretReader = Callable[[str], Iterable[tuple[str, str]]]


class _VaultProbe:
    """Wraps the Key Vault reader to learn whether the vault was asked, and how it went."""

    def __init__(self, reader: SecretReader | None) -> None:
        self.reader = reader
        self.url: str | None = None
        self.count = 0
        self.error: DicomcastError | None = None

    def read(self, url: str) -> list[tuple[str, str]]:
        self.url = url
        if self.reader is None:
            from dicomcast.config.keyvault import read_secrets

            self.reader = read_secrets
        try:
            secrets = list(self.reader(url))
        except DicomcastError as exc:
            self.error = exc
            raise
        self.count = len(secrets)
        return secrets


def check_settings(
    config_file: Path | None,
    environ: Mapping[str, str] | None = None,
    secret_reader: SecretReader | None = None,
) -> tuple[LoadedSettings | None, list[CheckLine]]:
    vault = _VaultProbe(secret_reader)
    try:
        loaded = load_settings(environ=environ, config_file=config_file, secret_reader=vault.read)
    except DicomcastError as exc:
        if vault.error is None:
            return None, [failed("settings", exc), skip("Key Vault", "not checked: settings invalid")]
        why = "not validated: the Key Vault could not be read"
        return None, [CheckLine("settings", Status.SKIP, why), failed("Key Vault", vault.error)]
    warned = f" ({len(loaded.warnings)} ignored, see `dicomcast config`)" if loaded.warnings else ""
    lines = [ok("settings", f"valid{warned}")]
    if vault.url is None:
        lines.append(skip("Key Vault", "KeyVault:Endpoint not set"))
    else:
        lines.append(ok("Key Vault", f"{safe_url(vault.url)} readable, {vault.count} secrets"))
    return loaded, lines


# -- tokens, DICOM, FHIR -----------------------------------------------------------------------
def check_token(name: str, settings: AuthenticationSettings, server: str) -> CheckLine:
    """Run the auth flow up to the point a request would be sent: that obtains a token (nothing is sent)."""
    kind = settings.effective_type
    if kind is AuthenticationType.NONE:
        return skip(name, "authentication off")
    if kind is AuthenticationType.BASIC:
        return skip(name, "Basic credentials, no token to obtain")
    try:
        auth = build_auth(settings, server)
        header = _authorization(auth) if auth is not None else ""
    except Exception as exc:
        return failed(name, exc)
    if not header.startswith("Bearer "):
        return CheckLine(name, Status.FAIL, f"{kind.value}: no bearer token obtained", ExitCode.NO_PERMISSION)
    return ok(name, f"{kind.value} token obtained")


def _authorization(auth: httpx.Auth) -> str:
    flow = auth.sync_auth_flow(httpx.Request("GET", "https://token-check.invalid/"))
    request = next(flow)
    flow.close()
    return str(request.headers.get("Authorization", ""))


def check_source(source: SourceSettings, settings: Settings) -> list[CheckLine]:
    from dicomcast.worker.build import change_source

    label = safe_url(source.dicom_web.endpoint or "") or source.name or "DicomWeb"
    lines = [check_token(f"DICOM token ({label})", source.dicom_web.authentication, "DicomWeb")]
    name = f"DICOM change feed ({label})"
    try:
        feed = change_source(source, settings)
    except Exception as exc:
        return [*lines, failed(name, exc)]
    try:
        position = feed.latest()
    except Exception as exc:
        return [*lines, failed(name, exc)]
    finally:
        feed.close()
    kind = feed.traits.kind
    latest = "empty feed" if position.sequence is None else f"latest sequence {position.sequence}"
    return [*lines, ok(name, f"{kind} reachable, {latest}")]


def check_fhir(settings: Settings) -> list[CheckLine]:
    from dicomcast.worker.build import fhir_client

    label = safe_url(settings.fhir.endpoint or "") or "Fhir:Endpoint"
    lines = [check_token("FHIR token", settings.fhir.authentication, "Fhir")]
    name = f"FHIR server ({label})"
    try:
        client = fhir_client(settings)
    except Exception as exc:
        return [*lines, failed(name, exc)]
    try:
        capabilities = client.capabilities()
    except Exception as exc:
        return [*lines, failed(name, exc)]
    finally:
        client.http.close()
    detail = f"FHIR {capabilities.fhir_version} ({capabilities.version.value}), transaction supported"
    return [*lines, ok(name, detail)]


def check_dicomcast_table(settings: Settings) -> CheckLine:
    """DICOM Cast's checkpoint in its Table Storage (TableStore:*), read only."""
    from dicomcast.dicomcast_table import describe, read_sync_state

    name = f"DICOM Cast checkpoint ({describe(settings.table_store)})"
    try:
        state = read_sync_state(settings.table_store)
    except Exception as exc:
        return failed(name, exc)
    if state is None:
        return ok(name, "no sync-state row: a source without a checkpoint starts at the feed's start")
    return ok(
        name, f"SyncedSequence {state.sequence}: the first start of a source without a checkpoint continues after it"
    )


# -- store -------------------------------------------------------------------------------------
def check_store(connection_string: str) -> CheckLine:
    try:
        url = make_url(connection_string)
    except Exception:
        return CheckLine("store", Status.FAIL, "Store:ConnectionString is not a database URL", ExitCode.CONFIG)
    name = f"store ({url.render_as_string(hide_password=True)})"
    if sqlite_file_missing(url):
        return CheckLine(
            name,
            Status.FAIL,
            "no database file (`dicomcast run` or `dicomcast migrate` creates it)",
            ExitCode.UNAVAILABLE,
        )
    try:
        engine = make_engine(connection_string)
        migrated = is_migrated(engine)
        engine.dispose()
    except Exception as exc:
        return failed(name, exc)
    if not migrated:
        return failed(name, StoreError("reachable but not migrated to the newest schema: run `dicomcast migrate`"))
    return ok(name, "reachable, schema migrated")


def run_checks(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    secret_reader: SecretReader | None = None,
) -> list[CheckLine]:
    loaded, lines = check_settings(config_file, environ, secret_reader)
    if loaded is None:
        return lines
    settings = loaded.settings
    for source in settings.effective_sources():
        lines += check_source(source, settings)
    lines += check_fhir(settings)
    if settings.table_store.configured:
        lines.append(check_dicomcast_table(settings))
    lines.append(check_store(settings.store.connection_string))
    return lines
