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

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator

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
    http_port: int | None = Field(None, alias="HttpPort", ge=0, le=65535)
    http_host: str = Field("127.0.0.1", alias="HttpHost")
    lease_duration: Duration = Field(timedelta(seconds=60), alias="LeaseDuration")
    shutdown_grace_period: Duration = Field(timedelta(seconds=30), alias="ShutdownGracePeriod")
    reconcile_interval: Duration = Field(timedelta(minutes=10), alias="ReconcileInterval")
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


class KeyVaultSettings(_Section):
    endpoint: str | None = Field(None, alias="Endpoint")


class LoggingSettings(_Section):
    level: str = Field("INFO", alias="Level")
    format: str = Field("auto", alias="Format")  # auto | json | console


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
