"""The settings contract: DICOM Cast's names, case-insensitive env, file under env, durations,
unknown keys reported, one problem line per invalid value naming env var and secret."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from dicomcast.config import ServerType, load_settings
from dicomcast.config.durations import parse_duration
from dicomcast.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:00:10", 10),
        ("10s", 10),
        ("10", 10),
        ("1.00:00:01", 86401),
        ("00:01:00.5", 60.5),
        ("5m", 300),
        ("500ms", 0.5),
    ],
)
def test_durations_in_every_accepted_form(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["soon", "10 minutes", "-5", "1:2"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="00:00:10, 10s"):
        parse_duration(text)


def test_env_names_are_case_insensitive_aspnet_form() -> None:
    loaded = load_settings(
        environ={
            "DICOMWEB__ENDPOINT": "http://orthanc:8042",
            "dicomweb__servertype": "orthanc",
            "Fhir__Endpoint": "http://fhir/r4",
            "DicomCastWorker__PollInterval": "00:00:10",
            "PATH": "/bin",
        }
    )
    assert loaded.settings.dicom_web.endpoint == "http://orthanc:8042"
    assert loaded.settings.dicom_web.server_type is ServerType.ORTHANC
    assert loaded.settings.worker.poll_interval == timedelta(seconds=10)
    assert loaded.origin(("DicomWeb", "Endpoint")) == "env DICOMWEB__ENDPOINT"
    assert loaded.origin(("Store", "ConnectionString")) == "default"
    assert loaded.warnings == []


def test_file_sits_under_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "dicomcast.toml"
    toml.write_text('[DicomWeb]\nEndpoint = "http://from-file/v2"\n[DicomCastWorker]\nBatchSize = 50\n')
    loaded = load_settings(environ={"DicomWeb__Endpoint": "http://from-env/v2"}, config_file=toml)
    assert loaded.settings.dicom_web.endpoint == "http://from-env/v2"
    assert loaded.settings.worker.batch_size == 50
    assert loaded.origin(("DicomCastWorker", "BatchSize")) == "file dicomcast.toml"

    as_json = tmp_path / "dicomcast.json"
    as_json.write_text(json.dumps({"Patient": {"PatientSystemId": "urn:oid:1.2"}}))
    assert load_settings(environ={}, config_file=as_json).settings.patient.patient_system_id == "urn:oid:1.2"


def test_unknown_keys_under_our_sections_are_reported_not_ignored() -> None:
    loaded = load_settings(environ={"DicomWeb__Endpiont": "typo", "Fhir__Authentication__Enabeld": "true", "HOME": "/"})
    assert any("DicomWeb:Endpiont" in w and "unknown setting" in w for w in loaded.warnings)
    assert any("Fhir:Authentication:Enabeld" in w for w in loaded.warnings)
    assert not any("HOME" in w for w in loaded.warnings)


def test_dicom_cast_aliases_and_table_store() -> None:
    environ = {"DICOM__Endpoint": "https://x/v1", "TableStore__ConnectionString": "s3cr3t-conn"}
    loaded = load_settings(environ={**environ, "TableStore__TableNamePrefix": "cast"})
    assert loaded.settings.dicom_web.endpoint == "https://x/v1"
    table = loaded.settings.table_store
    assert table.connection_string is not None and table.connection_string.get_secret_value() == "s3cr3t-conn"
    assert table.table_name_prefix == "cast" and table.configured
    assert not loaded.warnings
    assert "s3cr3t-conn" not in repr(loaded.settings)


def test_dicom_cast_settings_without_meaning_are_named_in_one_line() -> None:
    loaded = load_settings(
        environ={
            "Logging__LogLevel__Default": "Warning",
            "Logging__LogLevel__Microsoft": "Error",
            "Logging__ApplicationInsights__LogLevel__Default": "Information",
        }
    )
    assert loaded.settings.logging.level == "WARNING"  # .NET's Default level, mapped
    (line,) = loaded.warnings
    assert line.startswith("DICOM Cast settings without meaning in dicomcast, ignored: ")
    assert "Logging:LogLevel:Microsoft (env Logging__LogLevel__Microsoft)" in line
    assert "Logging:ApplicationInsights:LogLevel:Default" in line
    assert "Error" not in line.split(":", 1)[1].split(";")[0].split("(")[0]  # names, not values


@pytest.mark.parametrize(("dotnet", "python"), [("Trace", "DEBUG"), ("information", "INFO"), ("Critical", "CRITICAL")])
def test_dotnet_default_level_maps_unless_level_is_set(dotnet: str, python: str) -> None:
    assert load_settings(environ={"Logging__LogLevel__Default": dotnet}).settings.logging.level == python
    both = {"Logging__LogLevel__Default": dotnet, "Logging__Level": "ERROR"}
    assert load_settings(environ=both).settings.logging.level == "ERROR"


def test_unknown_dotnet_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"Logging__LogLevel__Default": "Verbose"})
    assert "Logging:LogLevel:Default" in str(raised.value) and "Logging__LogLevel__Default" in str(raised.value)


def test_azure_monitor_variable_and_setting() -> None:
    standard = "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:1/"
    loaded = load_settings(environ={"APPLICATIONINSIGHTS_CONNECTION_STRING": standard})
    value = loaded.settings.application_insights.connection_string
    assert value is not None and value.get_secret_value() == standard
    assert loaded.origin(("ApplicationInsights", "ConnectionString")) == "env APPLICATIONINSIGHTS_CONNECTION_STRING"
    ours = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": standard,
        "ApplicationInsights__ConnectionString": "InstrumentationKey=x",
    }
    value = load_settings(environ=ours).settings.application_insights.connection_string
    assert value is not None and value.get_secret_value() == "InstrumentationKey=x"


def test_several_sources_in_aspnet_array_form() -> None:
    loaded = load_settings(
        environ={
            "Sources__0__DicomWeb__Endpoint": "http://a:8042",
            "Sources__0__DicomWeb__ServerType": "Orthanc",
            "Sources__1__DicomWeb__Endpoint": "https://b/v2",
        }
    )
    sources = loaded.settings.effective_sources()
    assert [s.dicom_web.endpoint for s in sources] == ["http://a:8042", "https://b/v2"]
    assert [s.dicom_web.server_type for s in sources] == [ServerType.ORTHANC, ServerType.AZURE]


def test_invalid_values_one_line_each_naming_env_var_and_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"DicomCastWorker__PollInterval": "soon", "DicomCastWorker__MaxConcurrentStudies": "0"})
    problems = caught.value.problems
    assert len(problems) == 2
    assert any(
        "DicomCastWorker:PollInterval" in p
        and "env DicomCastWorker__PollInterval" in p
        and "DicomCastWorker--PollInterval" in p
        for p in problems
    )
    assert any("DicomCastWorker__MaxConcurrentStudies" in p for p in problems)


def test_unreadable_config_file_is_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[DicomWeb\n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_settings(environ={}, config_file=broken)


def test_tenant_id_and_retry_duration_are_explained_at_start_up() -> None:
    loaded = load_settings(
        environ={
            "Fhir__Authentication__ManagedIdentityCredential__TenantId": "t-1",
            "RetryConfiguration__TotalRetryDuration": "00:10:00",
        }
    )
    ignored = [w for w in loaded.warnings if w.startswith("DICOM Cast settings without meaning")]
    assert len(ignored) == 1 and "Fhir:Authentication:ManagedIdentityCredential:TenantId" in ignored[0]
    assert any(
        w.startswith("RetryConfiguration:TotalRetryDuration (env ") and "DICOM Cast skipped" in w
        for w in loaded.warnings
    )
    assert loaded.settings.retry.total_retry_duration.total_seconds() == 600
