"""OAuth2ClientCertificateCredential (DICOM Cast's fourth authentication type) with the real
azure-identity CertificateCredential against the Entra-shaped loopback token endpoint over https,
which checks the client assertion's signature against the registered certificate."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from dicomcast.auth import build_auth
from dicomcast.config.settings import AuthenticationSettings
from dicomcast.errors import AuthError, ConfigError
from tests.servers.aad import FakeAad
from tests.servers.bearer_api import BearerApi
from tests.servers.fixtures import bearer_api, tls_cert  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration
CLIENT = "dicomcast-cert-client"


def _certificate() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dicomcast test app")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _pem(key: rsa.RSAPrivateKey, cert: x509.Certificate) -> str:
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (private + cert.public_bytes(serialization.Encoding.PEM)).decode()


@pytest.fixture
def entra(tls_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAad]:  # noqa: F811
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_cert[0]))
    with FakeAad(tls=tls_cert) as server:
        yield server


def _settings(token_uri: str, **fields: str) -> AuthenticationSettings:
    kind = "OAuth2ClientCertificateCredential"
    section = {"TokenUri": token_uri, "ClientId": CLIENT} | fields
    return AuthenticationSettings.model_validate({"Enabled": True, "AuthenticationType": kind, kind: section})


def _get(api: BearerApi, settings: AuthenticationSettings) -> httpx.Response:
    with httpx.Client(base_url=api.url, auth=build_auth(settings, "Fhir"), timeout=30) as client:
        return client.get("/metadata")


@pytest.mark.parametrize("form", ["pem", "pkcs12-base64", "file"])
def test_certificate_signs_in(entra: FakeAad, bearer_api: BearerApi, tmp_path: Path, form: str) -> None:  # noqa: F811
    key, cert = _certificate()
    entra.certificates[CLIENT] = cert
    bearer_api.accept = lambda t: t in entra.issued and entra.issued[t].audience == "https://fhir.example/.default"
    pem = _pem(key, cert)
    if form == "pem":
        fields = {"Certificate": pem}
    elif form == "pkcs12-base64":  # as Key Vault returns a certificate through its secret
        pfx = pkcs12.serialize_key_and_certificates(b"app", key, cert, None, serialization.NoEncryption())
        fields = {"Certificate": base64.b64encode(pfx).decode()}
    else:
        (tmp_path / "app.pem").write_text(pem)
        fields = {"CertificatePath": str(tmp_path / "app.pem")}
    settings = _settings(f"{entra.url}/test-tenant/oauth2/v2.0/token", Resource="https://fhir.example", **fields)
    assert _get(bearer_api, settings).status_code == 200
    (form_sent,) = [f for f in entra.forms if "client_assertion" in f]
    assert "client_secret" not in form_sent and form_sent["client_id"] == CLIENT


def test_unregistered_certificate_is_an_auth_error_naming_the_settings(entra: FakeAad, bearer_api: BearerApi) -> None:  # noqa: F811
    key, cert = _certificate()
    entra.certificates[CLIENT] = _certificate()[1]  # another certificate is registered
    settings = _settings(f"{entra.url}/test-tenant/oauth2/v2.0/token", Scope="x/.default", Certificate=_pem(key, cert))
    with pytest.raises(AuthError) as raised:
        _get(bearer_api, settings)
    text = str(raised.value)
    assert "Fhir:Authentication:OAuth2ClientCertificateCredential:Certificate" in text or ":Certificate" in text
    assert "PRIVATE KEY" not in text


def test_missing_certificate_and_non_entra_token_uri_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="OAuth2ClientCertificateCredential:Certificate"):
        build_auth(_settings("https://login.example/t/oauth2/v2.0/token", Resource="r"), "Fhir")
    with pytest.raises(ConfigError, match="Entra ID token endpoint"):
        build_auth(_settings("https://auth.example/token", Resource="r", Certificate="-----BEGIN X"), "Fhir")
