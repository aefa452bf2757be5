"""Loads settings from their layers: defaults < `--config` file < environment < Key Vault.

Each layer yields (key path, value, origin). Keys are matched to the model case-insensitively
(`keys.match`); the origin of every value is kept so `dicomcast config` can say where it came
from. pydantic-settings merges the layers and pydantic validates the result; validation errors
become one line per problem naming the environment variable and the Key Vault secret to set.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from dicomcast.config import keys
from dicomcast.config.settings import Settings
from dicomcast.errors import ConfigError

RawItem = tuple[list[str], Any, str]  # (path segments, value, origin)
SecretReader = Callable[[str], Iterable[tuple[str, str]]]  # vault URL -> (secret name, value)


@dataclass
class LoadedSettings:
    settings: Settings
    origins: dict[tuple[str, ...], str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def origin(self, path: tuple[str, ...]) -> str:
        return self.origins.get(path, "default")


def _flatten(data: Mapping[str, Any], prefix: list[str]) -> Iterable[tuple[list[str], Any]]:
    for name, value in data.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, [*prefix, str(name)])
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for index, item in enumerate(value):
                yield from _flatten(item, [*prefix, str(name), str(index)])
        else:
            yield [*prefix, str(name)], value


def read_file(path: Path) -> list[RawItem]:
    """A TOML or JSON file with the same keys (`[DicomWeb] Endpoint = "..."`)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError([f"--config {path}: cannot read it: {exc}"]) from None
    return [(parts, value, f"file {path.name}") for parts, value in _flatten(data, [])]


# Azure's standard variable for Application Insights; `ApplicationInsights__ConnectionString` wins.
AZURE_MONITOR_VARIABLE = "APPLICATIONINSIGHTS_CONNECTION_STRING"


def read_environment(environ: Mapping[str, str]) -> list[RawItem]:
    """Environment variables in ASP.NET form (`DicomWeb__Endpoint`); others are left alone."""
    items: list[RawItem] = []
    if environ.get(AZURE_MONITOR_VARIABLE, "").strip():
        path = ["ApplicationInsights", "ConnectionString"]
        items.append((path, environ[AZURE_MONITOR_VARIABLE], f"env {AZURE_MONITOR_VARIABLE}"))
    for name, value in environ.items():
        parts = name.split("__")
        if len(parts) > 1 and keys.is_section(parts[0]):
            items.append((parts, value, f"env {name}"))
    return items


def read_key_vault(url: str, reader: SecretReader) -> list[RawItem]:
    """Enabled secrets named `A--B--C`; the values never leave this function except into settings."""
    return [(name.split("--"), value, f"Key Vault secret {name}") for name, value in reader(url)]


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


class _LayerSource(PydanticBaseSettingsSource):
    """One layer, already matched to canonical alias paths, as pydantic-settings wants it."""

    def __init__(self, settings_cls: type[BaseSettings], tree: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._tree = tree

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._tree.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._tree


_LAYERS: ContextVar[list[dict[str, Any]]] = ContextVar("dicomcast_layers")


class _LayeredSettings(BaseSettings):
    """Merges the layers (first wins) into one dict of aliases; validation is Settings' job."""

    model_config = SettingsConfigDict(extra="allow")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], *_: PydanticBaseSettingsSource, **__: Any
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return tuple(_LayerSource(settings_cls, tree) for tree in _LAYERS.get())


def _layer(
    items: list[RawItem], origins: dict[tuple[str, ...], str], warnings: list[str], ignored: list[str]
) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for parts, value, origin in items:
        found = keys.match(parts)
        if found.path is None:
            line = f"{':'.join(parts)} ({origin})"
            if found.ignored_reason:
                ignored.append(f"{line}: {found.ignored_reason}")
            else:
                warnings.append(f"{line}: unknown setting, ignored")
            continue
        _set(tree, found.path, value)
        origins[found.path] = origin
    return tree


def _problem_line(error: Any) -> str:
    loc = tuple(str(p) for p in error["loc"])
    key = ":".join(loc)
    return f"{key}: {error['msg']} (set env {keys.env_name(loc)} or Key Vault secret {keys.secret_name(loc)})"


def load_settings(
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    secret_reader: SecretReader | None = None,
) -> LoadedSettings:
    """Read every layer once (start-up only: a restart reloads, as in ACI) and validate."""
    env = dict(os.environ if environ is None else environ)
    origins: dict[tuple[str, ...], str] = {}
    warnings: list[str] = []
    ignored: list[str] = []
    file_items = read_file(config_file) if config_file else []
    layers = [_layer(file_items, origins, warnings, ignored), _layer(read_environment(env), origins, warnings, ignored)]
    vault_url = _vault_url(layers)
    if vault_url:
        reader = secret_reader or _default_secret_reader()
        layers.append(_layer(read_key_vault(vault_url, reader), origins, warnings, ignored))
    token = _LAYERS.set(list(reversed(layers)))  # highest priority first
    try:
        merged = _LayeredSettings().model_dump()
    finally:
        _LAYERS.reset(token)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError([_problem_line(e) for e in exc.errors()]) from None
    ignored.extend(_meaningless_values(origins))
    if ignored:  # DICOM Cast settings with no meaning here: one start-up line names them all
        warnings.append("DICOM Cast settings without meaning in dicomcast, ignored: " + "; ".join(ignored))
    if (origin := origins.get(("RetryConfiguration", "TotalRetryDuration"))) is not None:
        warnings.append(
            f"RetryConfiguration:TotalRetryDuration ({origin}) bounds the retries of one transient failure; "
            "when spent, the cycle ends with the checkpoint kept and is tried again (DICOM Cast skipped the entry)"
        )
    return LoadedSettings(settings, origins, warnings)


def _meaningless_values(origins: dict[tuple[str, ...], str]) -> list[str]:
    """Settings of the model kept for DICOM Cast's names that change nothing here, when set."""
    return [
        f"{':'.join(path)} ({origin}): a managed identity has no tenant to choose"
        for path, origin in origins.items()
        if path[-2:] == ("ManagedIdentityCredential", "TenantId")
    ]


def _vault_url(layers: list[dict[str, Any]]) -> str | None:
    for tree in reversed(layers):
        url = tree.get("KeyVault", {}).get("Endpoint")
        if url:
            return str(url)
    return None


def _default_secret_reader() -> SecretReader:
    from dicomcast.config.keyvault import read_secrets  # azure SDK imported only when a vault is used

    return read_secrets
