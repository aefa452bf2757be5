"""Key Vault client choices that need no network: challenge check, TLS trust, identity, URL."""

from __future__ import annotations

import pytest

from dicomcast.config.keyvault import client_options, is_loopback, read_secrets, uses_managed_identity
from dicomcast.errors import ConfigError


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["myvault.vault.azure.net", "10.0.0.4", "169.254.169.254", "localhost.evil.com", "", None]
)
def test_not_loopback(host: str | None) -> None:
    assert not is_loopback(host)


def test_challenge_check_kept_for_real_vaults_and_relaxed_for_loopback() -> None:
    assert client_options("https://myvault.vault.azure.net/", {}) == {"verify_challenge_resource": True}
    assert client_options("https://127.0.0.1:8443/", {}) == {"verify_challenge_resource": False}


def test_ssl_cert_file_used_when_requests_has_no_bundle() -> None:
    assert client_options("https://v.vault.azure.net", {"SSL_CERT_FILE": "/ca.pem"})["connection_verify"] == "/ca.pem"
    both = {"SSL_CERT_FILE": "/ca.pem", "REQUESTS_CA_BUNDLE": "/other.pem"}
    assert "connection_verify" not in client_options("https://v.vault.azure.net", both)  # requests reads its own


def test_managed_identity_environment() -> None:
    assert uses_managed_identity({"IDENTITY_ENDPOINT": "http://127.0.0.1:1/msi"})
    assert uses_managed_identity({"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:1"})
    assert not uses_managed_identity({"AZURE_CLIENT_ID": "x"})


@pytest.mark.parametrize("url", ["http://myvault.vault.azure.net", "myvault", "https://u:p@myvault.vault.azure.net/"])
def test_bad_vault_urls_are_config_errors_without_credentials(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read_secrets(url)
    (line,) = caught.value.problems
    assert line.startswith("KeyVault:Endpoint (env KeyVault__Endpoint):")
    assert "u:p" not in line
