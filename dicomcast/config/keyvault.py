"""Key Vault as a settings source: every enabled secret, read once at start-up.

The identity is the container's managed identity when its environment is present (App Service,
Arc, pod identity, Cloud Shell), else `DefaultAzureCredential` (which also finds the IMDS identity
of Azure Container Instances and VMs, a workload identity, or a developer's `az login`).

`SecretClient` checks that the vault's auth challenge names a Key Vault domain; that check stays
on for every real vault and is relaxed only for a loopback vault URL (a local test vault). A local
vault's certificate is trusted through `REQUESTS_CA_BUNDLE` (read by requests) or `SSL_CERT_FILE`.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from dicomcast.config import keys
from dicomcast.errors import AuthError, ConfigError

# Any of these means the platform gives this process a managed identity endpoint.
MANAGED_IDENTITY_ENV = ("IDENTITY_ENDPOINT", "MSI_ENDPOINT", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "IMDS_ENDPOINT")
_SETTING = "KeyVault:Endpoint (env KeyVault__Endpoint)"


def read_secrets(vault_url: str) -> Iterable[tuple[str, str]]:
    """(name, value) of every enabled secret. Values of secrets that match no setting are not
    fetched (they are yielded with an empty value, so the loader can still report them by name)."""
    url = _checked_url(vault_url)
    client = _secret_client(url, os.environ)
    return list(_read_all(client, url))


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def uses_managed_identity(environ: Mapping[str, str]) -> bool:
    return any(environ.get(name) for name in MANAGED_IDENTITY_ENV)


def client_options(url: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """SecretClient keyword arguments: the challenge check and TLS trust described above."""
    options: dict[str, Any] = {"verify_challenge_resource": not is_loopback(urlsplit(url).hostname)}
    if not environ.get("REQUESTS_CA_BUNDLE") and environ.get("SSL_CERT_FILE"):
        options["connection_verify"] = environ["SSL_CERT_FILE"]
    return options


def _checked_url(vault_url: str) -> str:
    url = vault_url.strip()
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.query:
        raise ConfigError([f"{_SETTING}: {_safe(url)} is not a Key Vault URL like https://<name>.vault.azure.net/"])
    return url


def _secret_client(url: str, environ: Mapping[str, str]) -> Any:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
    from azure.keyvault.secrets import SecretClient

    credential: Any
    if uses_managed_identity(environ):
        credential = ManagedIdentityCredential(client_id=environ.get("AZURE_CLIENT_ID") or None)
    else:
        credential = DefaultAzureCredential()
    return SecretClient(url, credential, **client_options(url, environ))


def _read_all(client: Any, url: str) -> Iterator[tuple[str, str]]:
    from azure.core.exceptions import AzureError

    try:
        for properties in client.list_properties_of_secrets():
            if properties.enabled is False or not properties.name:
                continue
            if keys.match(properties.name.split("--")).path is None:
                yield properties.name, ""
                continue
            value = client.get_secret(properties.name).value
            yield properties.name, value if value is not None else ""
    except AzureError as exc:
        raise _vault_error(exc, url) from None
    except ValueError as exc:  # the challenge names no Key Vault domain
        raise ConfigError([f"{_SETTING}: {_safe(url)} is not a Key Vault ({_first_line(exc)})"]) from None


def _vault_error(exc: Exception, url: str) -> Exception:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

    where = _safe(url)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, HttpResponseError) and status in (401, 403):  # the vault refused the token
        return AuthError(
            f"Key Vault {where}: HTTP {status}; give the identity 'get' and 'list' permission on "
            "secrets (access policy or the Key Vault Secrets User role)"
        )
    if isinstance(exc, ClientAuthenticationError):  # no token could be had
        return AuthError(
            f"Key Vault {where}: the identity could not sign in ({_first_line(exc)}); "
            "check the container's managed identity (or AZURE_CLIENT_ID for a user-assigned one)"
        )
    if isinstance(exc, ServiceRequestError):
        hint = "; trust its certificate with REQUESTS_CA_BUNDLE" if "CERTIFICATE" in str(exc).upper() else ""
        return ConfigError([f"{_SETTING}: cannot reach the Key Vault {where} ({type(exc).__name__}){hint}"])
    code = f"HTTP {status}" if status else type(exc).__name__
    return ConfigError([f"{_SETTING}: reading the Key Vault {where} failed ({code})"])


def _safe(url: str) -> str:
    """The URL without user info or query string."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # drop any user:password@
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else url.split("?")[0]


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
