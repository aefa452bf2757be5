"""pytest fixtures for the identity fakes. Import them into a test module by name.

`managed_identity` points azure-identity at the loopback token endpoint (IDENTITY_ENDPOINT /
IDENTITY_HEADER) and clears every other identity variable, so no test can reach 169.254.169.254.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.aad import FakeAad
from tests.servers.bearer_api import BearerApi
from tests.servers.keyvault import FakeKeyVault
from tests.servers.mi_token import MiTokenServer
from tests.servers.tls import self_signed

VAULT_RESOURCE = "https://vault.azure.net"
_IDENTITY_ENV = (
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "IDENTITY_SERVER_THUMBPRINT",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "SSL_CERT_FILE",
)


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def managed_identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[MiTokenServer]:
    for name in _IDENTITY_ENV:
        monkeypatch.delenv(name, raising=False)
    with MiTokenServer() as server:
        monkeypatch.setenv("IDENTITY_ENDPOINT", server.endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", server.header)
        yield server


@pytest.fixture
def key_vault(
    tls_cert: tuple[Path, Path], managed_identity: MiTokenServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeKeyVault]:
    """A vault that accepts only managed-identity tokens issued for the Key Vault resource."""
    with FakeKeyVault(*tls_cert) as vault:

        def accept(token: str) -> bool:
            return any(r.token == token and r.resource == VAULT_RESOURCE for r in managed_identity.requests)

        vault.accept = accept
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_cert[0]))
        yield vault


@pytest.fixture
def aad() -> Iterator[FakeAad]:
    with FakeAad() as server:
        yield server


@pytest.fixture
def bearer_api() -> Iterator[BearerApi]:
    with BearerApi() as server:
        yield server
