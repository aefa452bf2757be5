"""`dicomcast check`'s pieces that need no server: settings, Key Vault outcome, store, token skips."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from dicomcast.checks import CheckLine, Status, check_settings, check_store, check_token, exit_code, safe_url
from dicomcast.config.settings import AuthenticationSettings
from dicomcast.errors import AuthError, ExitCode
from dicomcast.store import migrate

VAULT = "https://my-vault.vault.azure.net/"


def test_safe_url_drops_user_info_and_query() -> None:
    assert safe_url("https://user:pw@host:8042/dicom-web?x=1") == "https://host:8042/dicom-web"
    assert safe_url("not a url?x") == "not a url"


def test_exit_code_is_the_first_failures() -> None:
    lines = [
        CheckLine("a", Status.OK, ""),
        CheckLine("b", Status.FAIL, "", ExitCode.NO_PERMISSION),
        CheckLine("c", Status.FAIL, "", ExitCode.UNAVAILABLE),
    ]
    assert exit_code(lines) == ExitCode.NO_PERMISSION
    assert exit_code(lines[:1]) == ExitCode.OK


def test_settings_valid_without_a_vault() -> None:
    loaded, lines = check_settings(None, environ={"Fhir__Endpoint": "http://127.0.0.1:1/fhir"})
    assert loaded is not None
    assert [(line.name, line.status) for line in lines] == [("settings", Status.OK), ("Key Vault", Status.SKIP)]


def test_invalid_settings_name_the_variable_to_fix() -> None:
    loaded, lines = check_settings(None, environ={"DicomCastWorker__MaxConcurrentStudies": "0"})
    assert loaded is None
    assert lines[0].status is Status.FAIL
    assert "DicomCastWorker__MaxConcurrentStudies" in lines[0].detail
    assert lines[0].exit_code == ExitCode.CONFIG


def test_a_readable_vault_is_counted_and_its_values_never_shown() -> None:
    def reader(url: str) -> Iterable[tuple[str, str]]:
        return [("Fhir--Endpoint", "http://127.0.0.1:1/fhir"), ("Store--ConnectionString", "sqlite:///s3cr3t.db")]

    loaded, lines = check_settings(None, environ={"KeyVault__Endpoint": VAULT}, secret_reader=reader)
    assert loaded is not None and loaded.settings.fhir.endpoint == "http://127.0.0.1:1/fhir"
    assert lines[1].render() == f"ok    Key Vault: {VAULT} readable, 2 secrets"
    assert "s3cr3t" not in "".join(line.render() for line in lines)


def test_an_unreadable_vault_fails_its_own_line() -> None:
    def reader(url: str) -> Iterable[tuple[str, str]]:
        raise AuthError(f"Key Vault {url}: HTTP 403; give the identity 'get' and 'list' permission on secrets")

    loaded, lines = check_settings(None, environ={"KeyVault__Endpoint": VAULT}, secret_reader=reader)
    assert loaded is None
    assert [line.status for line in lines] == [Status.SKIP, Status.FAIL]
    assert lines[1].name == "Key Vault"
    assert "HTTP 403" in lines[1].detail
    assert exit_code(lines) == ExitCode.NO_PERMISSION


def test_store_missing_file_is_reported_not_created(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    line = check_store(f"sqlite:///{path}")
    assert line.status is Status.FAIL
    assert "no database file" in line.detail
    assert not path.exists()


def test_store_not_migrated_then_migrated(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    create_engine(f"sqlite:///{path}").connect().close()
    assert "run `dicomcast migrate`" in check_store(f"sqlite:///{path}").detail
    migrate(create_engine(f"sqlite:///{path}"))
    assert check_store(f"sqlite:///{path}").render() == f"ok    store (sqlite:///{path}): reachable, schema migrated"


def test_store_url_password_is_hidden() -> None:
    line = check_store("nosuchdb://user:hunter2@127.0.0.1/db")
    assert line.status is Status.FAIL
    assert "hunter2" not in line.render()


def test_token_lines_skip_when_no_token_is_involved() -> None:
    assert (
        check_token("FHIR token", AuthenticationSettings(), "Fhir").render() == "skip  FHIR token: authentication off"
    )
    basic = AuthenticationSettings(Enabled=True, AuthenticationType="Basic")
    assert check_token("DICOM token", basic, "DicomWeb").status is Status.SKIP


@pytest.mark.parametrize("kind", ["OAuth2ClientCredential", "OAuth2UserPasswordCredential"])
def test_token_line_names_the_missing_settings(kind: str) -> None:
    line = check_token("FHIR token", AuthenticationSettings(Enabled=True, AuthenticationType=kind), "Fhir")
    assert line.status is Status.FAIL
    assert "ClientSecret" in line.detail
    assert line.exit_code == ExitCode.CONFIG
