"""All log output (every logger at DEBUG, stdout, stderr) of a Key Vault + auth flow, scanned for
every secret value and token: none may appear."""

from __future__ import annotations

import logging

import httpx
import pytest

from dicomcast.auth import build_auth
from dicomcast.config.loader import load_settings
from dicomcast.config.report import render_config
from dicomcast.errors import AuthError
from tests.servers import fixtures
from tests.servers.aad import FakeAad
from tests.servers.bearer_api import BearerApi
from tests.servers.keyvault import FakeKeyVault
from tests.servers.mi_token import MiTokenServer

pytestmark = pytest.mark.integration

# the identity fakes' fixtures, used by name
aad = fixtures.aad
bearer_api = fixtures.bearer_api
key_vault = fixtures.key_vault
managed_identity = fixtures.managed_identity
tls_cert = fixtures.tls_cert

CLIENT_SECRET = "client-secret-value-1"  # what FakeAad expects
STORE_URL = "postgresql://cast:store-db-password-9@127.0.0.1/cast"


def test_no_secret_or_token_in_any_output(
    key_vault: FakeKeyVault,
    managed_identity: MiTokenServer,
    aad: FakeAad,
    bearer_api: BearerApi,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = {
        "DicomWeb--Authentication--Enabled": "true",
        "DicomWeb--Authentication--AuthenticationType": "OAuth2ClientCredential",
        "DicomWeb--Authentication--OAuth2ClientCredential--TokenUri": aad.v1_token_uri(),
        "DicomWeb--Authentication--OAuth2ClientCredential--Resource": "https://dicom.example",
        "DicomWeb--Authentication--OAuth2ClientCredential--ClientId": "dicomcast-client",
        "DicomWeb--Authentication--OAuth2ClientCredential--ClientSecret": CLIENT_SECRET,
        "Fhir--Authentication--Enabled": "true",
        "Fhir--Authentication--AuthenticationType": "ManagedIdentity",
        "Fhir--Authentication--ManagedIdentityCredential--Resource": "https://fhir.example",
        "Store--ConnectionString": STORE_URL,
        "TableStore--ConnectionString": "AccountKey=table-account-key-7",
    }
    for name, value in secrets.items():
        key_vault.set(name, value)
    loaded = load_settings(environ={"KeyVault__Endpoint": key_vault.url})
    report = render_config(loaded)
    errors: list[str] = []
    bearer_api.accept = lambda t: t in ("aad-token-2", "mi-token-3")  # first tokens "expired": forces renewals
    for server, settings in (("DicomWeb", loaded.settings.dicom_web), ("Fhir", loaded.settings.fhir)):
        with httpx.Client(base_url=bearer_api.url, auth=build_auth(settings.authentication, server)) as client:
            assert client.get("/first").status_code == 200
            bearer_api.forbidden = {"aad-token-2", "mi-token-3"}
            try:
                client.get("/forbidden")
            except AuthError as exc:
                errors.append(str(exc))
            bearer_api.forbidden = set()
    assert len(errors) == 2

    captured = capfd.readouterr()
    output = "\n".join([caplog.text, captured.out, captured.err, *report, *errors, *loaded.warnings])
    tokens = [*managed_identity.issued, *aad.issued]
    assert len(tokens) == 5  # identity: vault, Fhir, Fhir renewed; OAuth2: DicomWeb, DicomWeb renewed
    forbidden = [CLIENT_SECRET, "store-db-password-9", "table-account-key-7", managed_identity.header, *tokens]
    leaked = [value for value in forbidden if value in output]
    assert leaked == []
    assert "DicomWeb:Authentication:OAuth2ClientCredential:ClientSecret" in "\n".join(report)  # it is listed, masked
