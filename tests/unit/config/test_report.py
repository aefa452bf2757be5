"""render_config: values, origins, masking and warnings."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from dicomcast.config.loader import load_settings
from dicomcast.config.report import render_config

VAULT = {
    "DICOM--Endpoint": "https://dicom.example",
    "Fhir--Authentication--Enabled": "true",
    "Fhir--Authentication--AuthenticationType": "OAuth2ClientCredential",
    "Fhir--Authentication--OAuth2ClientCredential--ClientSecret": "the-client-secret",
    "TableStore--ConnectionString": "AccountKey=table-key",
    "Logging--LogLevel--Microsoft": "Warning",
    "Other--App": "other-value",
}


def reader(url: str) -> Iterable[tuple[str, str]]:
    assert url == "https://v.vault.azure.net/"
    return VAULT.items()


def lines(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "settings.toml"
    config.write_text(
        '[DicomCastWorker]\nPollInterval = "1.02:03:04"\n[Patient]\nIssuerSystems = { "HOSP_A" = "urn:oid:1.2" }\n'
    )
    environ = {
        "KeyVault__Endpoint": "https://v.vault.azure.net/",
        "Store__ConnectionString": "postgresql://cast:db-password@127.0.0.1/cast",
        "Fhir__Endpoint": "https://user:pw@fhir.example/fhir",
        "Sources__0__DicomWeb__Endpoint": "http://orthanc:8042",
        "Sources__0__DicomWeb__Authentication__BasicCredential__Password": "orthanc-pw",
        "DicomCastWorker__MaxConcurrentStudies": "4",
    }
    loaded = load_settings(environ=environ, config_file=config, secret_reader=reader)
    rendered = render_config(loaded)
    text = "\n".join(rendered)
    for secret in ("the-client-secret", "table-key", "other-value", "db-password", "orthanc-pw", "user:pw"):
        assert secret not in text
    out: dict[str, str] = {}
    for line in rendered:
        key, _, rest = line.partition(" ")
        out[key] = rest.strip()
    return out


def test_values_and_origins(tmp_path: Path) -> None:
    out = lines(tmp_path)
    assert out["DicomWeb:Endpoint"] == "https://dicom.example  [Key Vault secret DICOM--Endpoint]"
    assert out["Fhir:Authentication:AuthenticationType"] == (
        "OAuth2ClientCredential  [Key Vault secret Fhir--Authentication--AuthenticationType]"
    )
    assert out["DicomCastWorker:MaxConcurrentStudies"] == "4  [env DicomCastWorker__MaxConcurrentStudies]"
    assert out["DicomCastWorker:PollInterval"] == "1.02:03:04  [file settings.toml]"
    assert out["DicomCastWorker:ShutdownGracePeriod"] == "00:00:30  [default]"
    assert out["Patient:IssuerSystems:HOSP_A"] == "urn:oid:1.2  [file settings.toml]"
    assert out["Sources:0:DicomWeb:Endpoint"] == "http://orthanc:8042  [env Sources__0__DicomWeb__Endpoint]"


def test_secrets_are_masked(tmp_path: Path) -> None:
    out = lines(tmp_path)
    assert out["Fhir:Authentication:OAuth2ClientCredential:ClientSecret"].startswith("***  [Key Vault secret")
    assert out["Store:ConnectionString"] == "***  [env Store__ConnectionString]"
    assert out["TableStore:ConnectionString"] == "***  [Key Vault secret TableStore--ConnectionString]"
    assert out["TableStore:TableNamePrefix"] == "(not set)  [default]"
    assert out["ApplicationInsights:InstrumentationKey"] == "(not set)  [default]"
    assert out["Sources:0:DicomWeb:Authentication:BasicCredential:Password"].startswith("***")
    assert out["Fhir:Endpoint"] == "https://***@fhir.example/fhir  [env Fhir__Endpoint]"
    assert out["Fhir:Authentication:OAuth2ClientCredential:TokenUri"] == "(not set)  [default]"


def test_warnings_name_ignored_and_unknown_secrets() -> None:
    loaded = load_settings(environ={"KeyVault__Endpoint": "https://v.vault.azure.net/"}, secret_reader=reader)
    rendered = [line for line in render_config(loaded) if line.startswith("warning: ")]
    assert len(rendered) == 2
    assert rendered[0] == "warning: Other:App (Key Vault secret Other--App): unknown setting, ignored"
    assert rendered[1].startswith(
        "warning: DICOM Cast settings without meaning in dicomcast, ignored: Logging:LogLevel:Microsoft "
        "(Key Vault secret Logging--LogLevel--Microsoft): .NET per-category log level"
    )


def test_secret_query_values_and_user_info_in_urls_are_masked() -> None:
    environ = {
        "DicomWeb__Endpoint": "https://dicom.example/v2?sig=sas-signature&sv=2024",
        "Fhir__Endpoint": "https://user:pw@fhir.example/fhir?code=oauth-code",
    }
    rendered = "\n".join(render_config(load_settings(environ=environ, config_file=None)))
    for secret in ("sas-signature", "oauth-code", "user:pw"):
        assert secret not in rendered
    assert "https://dicom.example/v2?sig=***&sv=2024  [env DicomWeb__Endpoint]" in rendered
    assert "https://***@fhir.example/fhir?code=***  [env Fhir__Endpoint]" in rendered
