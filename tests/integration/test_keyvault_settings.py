"""Settings from a DICOM Cast Key Vault: real SecretClient + real ManagedIdentityCredential against
the loopback HTTPS vault and token endpoint (tests/servers)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dicomcast.config.keyvault import read_secrets
from dicomcast.config.loader import load_settings
from dicomcast.config.settings import AuthenticationType
from dicomcast.errors import AuthError, ConfigError
from tests.servers import fixtures
from tests.servers.keyvault import FakeKeyVault
from tests.servers.mi_token import MiTokenServer

pytestmark = pytest.mark.integration

# the identity fakes' fixtures, used by name
key_vault = fixtures.key_vault
managed_identity = fixtures.managed_identity
tls_cert = fixtures.tls_cert

TABLE_CONNECTION = "DefaultEndpointsProtocol=https;AccountName=cast;AccountKey=c2VjcmV0LXRhYmxlLWtleQ=="
DICOM_CAST_VAULT = {
    "DICOM--Endpoint": "https://dicom.example.azurehealthcareapis.com",
    "DicomWeb--Authentication--Enabled": "true",
    "DicomWeb--Authentication--AuthenticationType": "ManagedIdentity",
    "DicomWeb--Authentication--ManagedIdentityCredential--Resource": "https://dicom.healthcareapis.azure.com",
    "Fhir--Endpoint": "https://fhir.example.azurehealthcareapis.com",
    "Fhir--Authentication--Enabled": "true",
    "Fhir--Authentication--AuthenticationType": "ManagedIdentity",
    "Fhir--Authentication--ManagedIdentityCredential--Resource": "https://fhir.example.azurehealthcareapis.com",
    "TableStore--ConnectionString": TABLE_CONNECTION,
    "ApplicationInsights--InstrumentationKey": "00000000-0000-4000-8000-0000000000aa",
    "Logging--LogLevel--Microsoft": "Warning",
    "Some--Other--App-Secret": "other-app-secret-value",
}


def fill(vault: FakeKeyVault, secrets: dict[str, str]) -> None:
    for name, value in secrets.items():
        vault.set(name, value)


def test_dicom_cast_vault_configures_dicomcast(key_vault: FakeKeyVault, managed_identity: MiTokenServer) -> None:
    fill(key_vault, DICOM_CAST_VAULT)
    loaded = load_settings(environ={"KeyVault__Endpoint": key_vault.url, "Fhir__Endpoint": "https://env.example"})
    s = loaded.settings
    assert s.dicom_web.endpoint == "https://dicom.example.azurehealthcareapis.com"
    assert s.dicom_web.authentication.effective_type is AuthenticationType.MANAGED_IDENTITY
    assert s.dicom_web.authentication.managed_identity_credential.resource == "https://dicom.healthcareapis.azure.com"
    assert s.fhir.endpoint == "https://fhir.example.azurehealthcareapis.com"  # the vault wins over env
    assert loaded.origin(("DicomWeb", "Endpoint")) == "Key Vault secret DICOM--Endpoint"
    assert loaded.origin(("Fhir", "Endpoint")) == "Key Vault secret Fhir--Endpoint"
    table = s.table_store.connection_string
    assert table is not None and table.get_secret_value() == TABLE_CONNECTION  # DICOM Cast's checkpoint, read later
    key = s.application_insights.instrumentation_key
    assert key is not None and key.get_secret_value().endswith("aa")
    warnings = "\n".join(loaded.warnings)
    assert "Some--Other--App-Secret" in warnings and "unknown setting" in warnings
    (ignored,) = [w for w in loaded.warnings if w.startswith("DICOM Cast settings without meaning")]
    assert "Logging--LogLevel--Microsoft" in ignored
    assert TABLE_CONNECTION not in warnings and "other-app-secret-value" not in warnings
    # the vault was reached with a managed-identity token for Key Vault, and unknown values were not fetched
    assert [r.resource for r in managed_identity.requests] == ["https://vault.azure.net"]
    assert "Some--Other--App-Secret" not in key_vault.reads
    assert "Logging--LogLevel--Microsoft" not in key_vault.reads


def test_many_secrets_are_read_across_pages(key_vault: FakeKeyVault) -> None:
    key_vault.page_size = 2
    fill(key_vault, DICOM_CAST_VAULT)
    names = {name for name, _ in read_secrets(key_vault.url)}
    assert names == set(DICOM_CAST_VAULT)


def test_disabled_secret_is_not_read(key_vault: FakeKeyVault) -> None:
    key_vault.set("Fhir--Endpoint", "https://fhir.enabled.example")
    key_vault.set("DicomWeb--Endpoint", "https://disabled.example", enabled=False)
    loaded = load_settings(environ={"KeyVault__Endpoint": key_vault.url, "DicomWeb__Endpoint": "https://env.example"})
    assert loaded.settings.dicom_web.endpoint == "https://env.example"
    assert loaded.origin(("DicomWeb", "Endpoint")) == "env DicomWeb__Endpoint"
    assert key_vault.reads == ["Fhir--Endpoint"]


def test_restart_sees_a_changed_secret(key_vault: FakeKeyVault) -> None:
    """ACI stop/start: settings are read once per start; a second start reads the new value."""
    fill(key_vault, DICOM_CAST_VAULT)
    env = {"KeyVault__Endpoint": key_vault.url}
    first = load_settings(environ=env)
    key_vault.set("Fhir--Endpoint", "https://fhir.moved.example")
    key_vault.set("DicomWeb--Authentication--Enabled", "false")
    assert first.settings.fhir.endpoint == "https://fhir.example.azurehealthcareapis.com"  # no live reload
    second = load_settings(environ=env)
    assert second.settings.fhir.endpoint == "https://fhir.moved.example"
    assert second.settings.dicom_web.authentication.effective_type is AuthenticationType.NONE


def test_invalid_secret_value_names_the_secret(key_vault: FakeKeyVault) -> None:
    key_vault.set("DicomCastWorker--MaxConcurrentStudies", "many")
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"KeyVault__Endpoint": key_vault.url})
    (line,) = caught.value.problems
    assert "DicomCastWorker--MaxConcurrentStudies" in line and "DicomCastWorker__MaxConcurrentStudies" in line


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_vault_unreachable_at_start_is_a_clear_config_error(managed_identity: MiTokenServer) -> None:
    url = f"https://127.0.0.1:{_closed_port()}/"
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"KeyVault__Endpoint": url})
    (line,) = caught.value.problems
    assert line.startswith("KeyVault:Endpoint (env KeyVault__Endpoint): cannot reach the Key Vault")
    assert url in line


def test_plain_http_vault_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="is not a Key Vault URL"):
        read_secrets("http://127.0.0.1:1/")


def test_identity_without_vault_access_is_an_auth_error(key_vault: FakeKeyVault) -> None:
    key_vault.accept = lambda token: False
    with pytest.raises(AuthError, match=r"Key Vault https://127\.0\.0\.1:\d+: HTTP 401; give the identity"):
        read_secrets(key_vault.url)


def test_managed_identity_refused_is_an_auth_error(key_vault: FakeKeyVault, managed_identity: MiTokenServer) -> None:
    managed_identity.refuse = True
    with pytest.raises(AuthError, match="could not sign in"):
        read_secrets(key_vault.url)


def test_untrusted_certificate_says_how_to_trust_it(key_vault: FakeKeyVault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    with pytest.raises(ConfigError, match="REQUESTS_CA_BUNDLE"):
        read_secrets(key_vault.url)


def test_ssl_cert_file_is_trusted_too(
    key_vault: FakeKeyVault, tls_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert[0]))
    key_vault.set("Fhir--Endpoint", "https://fhir.example")
    assert read_secrets(key_vault.url) == [("Fhir--Endpoint", "https://fhir.example")]
