"""The settings model. Field aliases are DICOM Cast's configuration names (`DicomWeb:Endpoint`),
so the same environment variables and Key Vault secrets configure both.

Every field is reachable as a colon path of aliases; `keys.py` walks this model to match incoming
names case-insensitively and to report unknown ones.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from functools import partial
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator, model_validator

from dicomcast.config.durations import parse_duration

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _split_list(value: Any) -> Any:
    """`a,b` from an environment variable becomes a list; JSON lists pass through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, dict):  # ASP.NET array form: {"0": "a", "1": "b"}
        return [value[k] for k in sorted(value, key=lambda k: int(k) if str(k).isdigit() else 0)]
    return value


StrList = Annotated[list[str], BeforeValidator(_split_list)]


def _member(enum: type[StrEnum], value: Any) -> Any:
    """Enum values in any case (`orthanc`, `MANAGEDIDENTITY`), as .NET's binder accepts them."""
    if isinstance(value, str):
        for member in enum:
            if member.value.lower() == value.strip().lower():
                return member
    return value


class _Section(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class ServerType(StrEnum):
    AZURE = "Azure"
    ORTHANC = "Orthanc"


class AuthenticationType(StrEnum):
    NONE = "None"
    MANAGED_IDENTITY = "ManagedIdentity"
    OAUTH2_CLIENT_CREDENTIAL = "OAuth2ClientCredential"
    OAUTH2_USER_PASSWORD = "OAuth2UserPasswordCredential"  # noqa: S105 (a type name)
    OAUTH2_CLIENT_CERTIFICATE = "OAuth2ClientCertificateCredential"
    BASIC = "Basic"


class ManagedIdentityCredentialSettings(_Section):
    resource: str | None = Field(None, alias="Resource")
    client_id: str | None = Field(None, alias="ClientId")
    tenant_id: str | None = Field(None, alias="TenantId")


class OAuth2ClientCredentialSettings(_Section):
    token_uri: str | None = Field(None, alias="TokenUri")
    resource: str | None = Field(None, alias="Resource")
    scope: str | None = Field(None, alias="Scope")
    client_id: str | None = Field(None, alias="ClientId")
    client_secret: SecretStr | None = Field(None, alias="ClientSecret")


class OAuth2UserPasswordCredentialSettings(OAuth2ClientCredentialSettings):
    username: str | None = Field(None, alias="Username")
    password: SecretStr | None = Field(None, alias="Password")


class OAuth2ClientCertificateCredentialSettings(_Section):
    """DICOM Cast's certificate credential: a JWT client assertion signed with the certificate's key
    (azure-identity's CertificateCredential), sent to an Entra-shaped TokenUri."""

    token_uri: str | None = Field(None, alias="TokenUri")
    resource: str | None = Field(None, alias="Resource")
    scope: str | None = Field(None, alias="Scope")
    client_id: str | None = Field(None, alias="ClientId")
    # PEM text, or base64 PKCS#12 as Key Vault hands out a certificate through its secret.
    certificate: SecretStr | None = Field(None, alias="Certificate")
    certificate_path: str | None = Field(None, alias="CertificatePath")
    certificate_password: SecretStr | None = Field(None, alias="CertificatePassword")


class BasicCredentialSettings(_Section):
    username: str | None = Field(None, alias="Username")
    password: SecretStr | None = Field(None, alias="Password")


class AuthenticationSettings(_Section):
    enabled: bool = Field(False, alias="Enabled")
    authentication_type: Annotated[AuthenticationType, BeforeValidator(partial(_member, AuthenticationType))] = Field(
        AuthenticationType.NONE, alias="AuthenticationType"
    )
    managed_identity_credential: ManagedIdentityCredentialSettings = Field(
        default_factory=ManagedIdentityCredentialSettings, alias="ManagedIdentityCredential"
    )
    oauth2_client_credential: OAuth2ClientCredentialSettings = Field(
        default_factory=OAuth2ClientCredentialSettings, alias="OAuth2ClientCredential"
    )
    oauth2_user_password_credential: OAuth2UserPasswordCredentialSettings = Field(
        default_factory=OAuth2UserPasswordCredentialSettings, alias="OAuth2UserPasswordCredential"
    )
    oauth2_client_certificate_credential: OAuth2ClientCertificateCredentialSettings = Field(
        default_factory=OAuth2ClientCertificateCredentialSettings, alias="OAuth2ClientCertificateCredential"
    )
    basic_credential: BasicCredentialSettings = Field(default_factory=BasicCredentialSettings, alias="BasicCredential")

    @property
    def effective_type(self) -> AuthenticationType:
        """`Enabled=false` wins over any type, as in DICOM Cast."""
        return self.authentication_type if self.enabled else AuthenticationType.NONE


class DicomWebSettings(_Section):
    endpoint: str | None = Field(None, alias="Endpoint")
    private_endpoint: str | None = Field(None, alias="PrivateEndpoint")
    server_type: Annotated[ServerType, BeforeValidator(partial(_member, ServerType))] = Field(
        ServerType.AZURE, alias="ServerType"
    )
    partitions: StrList = Field(default_factory=list, alias="Partitions")
    authentication: AuthenticationSettings = Field(default_factory=AuthenticationSettings, alias="Authentication")


class FhirSettings(_Section):
    endpoint: str | None = Field(None, alias="Endpoint")
    authentication: AuthenticationSettings = Field(default_factory=AuthenticationSettings, alias="Authentication")


class StoreSettings(_Section):
    connection_string: str = Field("sqlite:///dicomcast.db", alias="ConnectionString")


class PatientSettings(_Section):
    patient_system_id: str | None = Field(None, alias="PatientSystemId")
    is_issuer_id_used: bool = Field(False, alias="IsIssuerIdUsed")
    # IssuerOfPatientID value -> URI; FHIR identifier systems must be URIs.
    issuer_systems: dict[str, str] = Field(default_factory=dict, alias="IssuerSystems")


class WorkerSettings(_Section):
    poll_interval: Duration = Field(timedelta(minutes=1), alias="PollInterval")
    poll_interval_during_catchup: Duration = Field(timedelta(0), alias="PollIntervalDuringCatchup")
    batch_size: int | None = Field(None, alias="BatchSize", ge=1)  # None: the source's maximum
    max_concurrent_studies: int = Field(8, alias="MaxConcurrentStudies", ge=1, le=64)
    # Feed pages joined into one batch: a study spanning pages is written once per batch.
    max_batch_entries: int = Field(1000, alias="MaxBatchEntries", ge=1, le=20000)
    # ... and up to this many bytes of the feed's JSON (metadata): memory stays bounded where instances
    # carry much metadata (a CT image's is about 12 KB, 110 KB once read). A batch is at least one page.
    max_batch_bytes: int = Field(2_097_152, alias="MaxBatchBytes", ge=65_536, le=1_073_741_824)
    # Studies of a batch share FHIR transactions up to these sizes (Azure's limit: 500 entries).
    max_bundle_entries: int = Field(500, alias="MaxBundleEntries", ge=2, le=10000)
    max_bundle_bytes: int = Field(1_048_576, alias="MaxBundleBytes", ge=1024, le=100_000_000)
    http_port: int | None = Field(None, alias="HttpPort", ge=0, le=65535)
    http_host: str = Field("127.0.0.1", alias="HttpHost")
    lease_duration: Duration = Field(timedelta(seconds=60), alias="LeaseDuration")
    shutdown_grace_period: Duration = Field(timedelta(seconds=30), alias="ShutdownGracePeriod")
    reconcile_interval: Duration = Field(timedelta(days=1), alias="ReconcileInterval")
    default_timezone: str = Field("+00:00", alias="DefaultTimezone")


class FeatureSettings(_Section):
    enforce_validation_of_tag_values: bool = Field(False, alias="EnforceValidationOfTagValues")
    generate_observations: bool = Field(True, alias="GenerateObservations")
    ignore_json_parsing_errors: bool = Field(False, alias="IgnoreJsonParsingErrors")


class DicomCastSettings(_Section):
    features: FeatureSettings = Field(default_factory=FeatureSettings, alias="Features")


class RetrySettings(_Section):
    total_retry_duration: Duration = Field(timedelta(minutes=2), alias="TotalRetryDuration")
    max_attempts: int = Field(8, alias="MaxAttempts", ge=1)


class TableStoreSettings(_Section):
    """DICOM Cast's Azure Table Storage. Read once, never written: its SyncedSequence seeds the
    checkpoint of a source that has none yet (`dicomcast/dicomcast_table.py`)."""

    connection_string: SecretStr | None = Field(None, alias="ConnectionString")
    endpoint_uri: str | None = Field(None, alias="EndpointUri")
    client_id: str | None = Field(None, alias="ClientId")  # user-assigned managed identity
    table_name_prefix: str | None = Field(None, alias="TableNamePrefix")

    @property
    def configured(self) -> bool:
        secret = self.connection_string.get_secret_value().strip() if self.connection_string else ""
        return bool(secret or (self.endpoint_uri or "").strip())


class ApplicationInsightsSettings(_Section):
    """Azure Monitor. `ConnectionString` (also the APPLICATIONINSIGHTS_CONNECTION_STRING variable)
    wins over DICOM Cast's `InstrumentationKey`; with neither, no telemetry is sent anywhere."""

    connection_string: SecretStr | None = Field(None, alias="ConnectionString")
    instrumentation_key: SecretStr | None = Field(None, alias="InstrumentationKey")


class KeyVaultSettings(_Section):
    endpoint: str | None = Field(None, alias="Endpoint")


# .NET log levels (DICOM Cast's `Logging:LogLevel:Default`) -> Python's.
DOTNET_LOG_LEVELS = {
    "trace": "DEBUG",
    "debug": "DEBUG",
    "information": "INFO",
    "warning": "WARNING",
    "error": "ERROR",
    "critical": "CRITICAL",
    "none": "CRITICAL",
}


class LogLevelSettings(_Section):
    default: str | None = Field(None, alias="Default")

    @field_validator("default")
    @classmethod
    def _dotnet_level(cls, value: str | None) -> str | None:
        if value is not None and value.strip().lower() not in DOTNET_LOG_LEVELS:
            raise ValueError(
                f"{value!r} is not a .NET log level (Trace, Debug, Information, Warning, Error, Critical, None)"
            )
        return value


class LoggingSettings(_Section):
    level: str = Field("INFO", alias="Level")
    format: str = Field("auto", alias="Format")  # auto | json | console
    # DICOM Cast's .NET levels; `Default` sets Level when Level itself is not given.
    log_level: LogLevelSettings = Field(default_factory=LogLevelSettings, alias="LogLevel")

    @model_validator(mode="before")
    @classmethod
    def _dotnet_default(cls, data: Any) -> Any:
        if not isinstance(data, dict) or any(str(k).lower() == "level" for k in data):
            return data
        levels = next((v for k, v in data.items() if str(k).lower() == "loglevel"), None)
        default = levels.get("Default") if isinstance(levels, dict) else None
        if isinstance(default, str) and default.strip().lower() in DOTNET_LOG_LEVELS:
            return {**data, "Level": DOTNET_LOG_LEVELS[default.strip().lower()]}
        return data


class SourceSettings(_Section):
    """One DICOM server feeding the FHIR server (an item of `Sources`)."""

    name: str | None = Field(None, alias="Name")
    dicom_web: DicomWebSettings = Field(default_factory=DicomWebSettings, alias="DicomWeb")


class Settings(_Section):
    dicom_web: DicomWebSettings = Field(default_factory=DicomWebSettings, alias="DicomWeb")
    fhir: FhirSettings = Field(default_factory=FhirSettings, alias="Fhir")
    store: StoreSettings = Field(default_factory=StoreSettings, alias="Store")
    patient: PatientSettings = Field(default_factory=PatientSettings, alias="Patient")
    worker: WorkerSettings = Field(default_factory=WorkerSettings, alias="DicomCastWorker")
    dicom_cast: DicomCastSettings = Field(default_factory=DicomCastSettings, alias="DicomCast")
    retry: RetrySettings = Field(default_factory=RetrySettings, alias="RetryConfiguration")
    key_vault: KeyVaultSettings = Field(default_factory=KeyVaultSettings, alias="KeyVault")
    table_store: TableStoreSettings = Field(default_factory=TableStoreSettings, alias="TableStore")
    application_insights: ApplicationInsightsSettings = Field(
        default_factory=ApplicationInsightsSettings, alias="ApplicationInsights"
    )
    logging: LoggingSettings = Field(default_factory=LoggingSettings, alias="Logging")
    sources: list[SourceSettings] = Field(default_factory=list, alias="Sources")

    @field_validator("sources", mode="before")
    @classmethod
    def _array_form(cls, value: Any) -> Any:
        return _split_list(value) if isinstance(value, dict) else value

    def effective_sources(self) -> list[SourceSettings]:
        """`Sources` when given, else the single-source `DicomWeb` section (DICOM Cast's shape)."""
        if self.sources:
            return list(self.sources)
        return [SourceSettings(name=None, dicom_web=self.dicom_web)]
