"""deploy/keyvault/: the secret list matches the settings model both ways, and set-secrets.sh writes
what a settings file holds (the ACI template: test_aci_template.py)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dicomcast.config import keys
from dicomcast.config.loader import LoadedSettings
from dicomcast.config.report import _effective, _shown
from dicomcast.config.settings import Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "keyvault"
CATALOG = json.loads((DEPLOY / "secrets.json").read_text())
ENTRIES: list[dict[str, Any]] = CATALOG["secrets"]


def concrete(parts: list[str]) -> list[str]:
    """A `*` segment as a real list index or map key."""
    return [("0" if parts[i - 1] == "Sources" else "some-issuer") if p == "*" else p for i, p in enumerate(parts)]


def test_every_listed_name_is_a_known_setting() -> None:
    for entry in ENTRIES:
        parts = entry["name"].split("--")
        assert keys.match(concrete(parts)).path is not None, entry["name"]
        assert entry["env"] == "__".join(parts)


def test_every_setting_is_listed_once() -> None:
    listed = [tuple(e["name"].split("--")) for e in ENTRIES]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(keys.leaf_paths())


def test_listed_defaults_and_secret_flags_match_the_model() -> None:
    defaults = {":".join(p): _shown(p, v) for p, v in _effective(LoadedSettings(Settings()))}
    for entry in ENTRIES:
        parts = tuple(entry["name"].split("--"))
        assert entry["secret"] == keys.is_secret_path(parts), entry["name"]
        if "*" in parts or entry["secret"]:
            continue
        expected = defaults[":".join(parts)]
        listed = entry["default"]
        shown = (
            "(not set)"
            if listed is None
            else ("true" if listed is True else "false" if listed is False else str(listed))
        )
        assert shown == expected or (listed is None and expected == "(empty)"), entry["name"]
        assert entry["meaning"].strip()


def test_aliases_and_ignored_names() -> None:
    for alias in CATALOG["aliases"]:
        assert keys.match(alias["name"].split("--")) == keys.match(alias["sameAs"].split("--"))
    for ignored in CATALOG["ignored"]:
        found = keys.match(ignored["name"].split("--"))
        assert found.path is None and found.ignored_reason


def test_dicom_cast_guide_names_are_listed_or_aliased() -> None:
    names = {e["name"].lower() for e in ENTRIES} | {a["name"].lower() for a in CATALOG["aliases"]}
    for name in (
        "DICOM--Endpoint",
        "DicomWeb--Authentication--Enabled",
        "DicomWeb--Authentication--AuthenticationType",
        "DicomWeb--Authentication--ManagedIdentityCredential--Resource",
        "Fhir--Endpoint",
        "Fhir--Authentication--OAuth2ClientCredential--ClientSecret",
    ):
        assert name.lower() in names


@pytest.fixture
def fake_az(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An `az` on PATH that records each secret it is asked to set (name and file content)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "az.log"
    bin_dir.mkdir()
    script = bin_dir / "az"
    script.write_text(
        "#!/usr/bin/env bash\n"
        "while [[ $# -gt 0 ]]; do case $1 in --name) n=$2; shift;; --file) f=$2; shift;; esac; shift; done\n"
        f'printf "%s=%s\\n" "$n" "$(cat "$f")" >> {log}\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, log


def run_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY / "set-secrets.sh"), *args], env=env, capture_output=True, text=True, check=False
    )


def test_set_secrets_writes_every_setting(tmp_path: Path, fake_az: tuple[dict[str, str], Path]) -> None:
    env, log = fake_az
    settings = tmp_path / "settings.toml"
    settings.write_text(
        '[DICOM]\nEndpoint = "https://dicom.example"\n'
        '[Fhir.Authentication]\nEnabled = true\nAuthenticationType = "OAuth2ClientCredential"\n'
        '[Fhir.Authentication.OAuth2ClientCredential]\nClientSecret = "very-secret-value"\n'
    )
    result = run_script(env, "my-vault", str(settings))
    assert result.returncode == 0, result.stderr
    assert sorted(log.read_text().splitlines()) == [
        "DICOM--Endpoint=https://dicom.example",
        "Fhir--Authentication--AuthenticationType=OAuth2ClientCredential",
        "Fhir--Authentication--Enabled=true",
        "Fhir--Authentication--OAuth2ClientCredential--ClientSecret=very-secret-value",
    ]
    assert "very-secret-value" not in result.stdout + result.stderr


def test_set_secrets_refuses_unknown_names(tmp_path: Path, fake_az: tuple[dict[str, str], Path]) -> None:
    env, log = fake_az
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"Fhir": {"Endpoint": "https://f", "Endpiont": "typo"}}))
    result = run_script(env, "my-vault", str(settings))
    assert result.returncode != 0
    assert "Fhir--Endpiont" in result.stderr
    assert not log.exists()  # nothing written when a name is wrong


def test_set_secrets_dry_run_calls_nothing(tmp_path: Path, fake_az: tuple[dict[str, str], Path]) -> None:
    env, log = fake_az
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"Sources": [{"Name": "a", "DicomWeb": {"Endpoint": "https://a"}}]}))
    result = run_script(env, "my-vault", str(settings), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would set Sources--0--DicomWeb--Endpoint" in result.stdout
    assert not log.exists()
