"""The Postman collection's token step (azure environment) against an Entra-shaped loopback token
endpoint: the token is obtained with client credentials and `{{fhirUrl}}/.default`, then sent to FHIR.
The whole collection runs against a synced local FHIR server in scripts/newman.sh."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.aad import FakeAad
from tests.servers.bearer_api import BearerApi

pytestmark = pytest.mark.integration
POSTMAN = Path(__file__).resolve().parents[2] / "deploy" / "postman"
NEWMAN = POSTMAN / "node_modules" / ".bin" / "newman"


@pytest.fixture
def aad() -> Iterator[FakeAad]:
    with FakeAad() as server:
        yield server


@pytest.fixture
def fhir_api() -> Iterator[BearerApi]:
    with BearerApi() as api:
        yield api


def _newman(tmp_path: Path, variables: dict[str, str], folders: list[str]) -> dict:
    assert NEWMAN.exists(), "newman is missing: run scripts/setup.sh (npm ci in deploy/postman)"
    report = tmp_path / "report.json"
    command = [
        str(NEWMAN),
        "run",
        str(POSTMAN / "dicomcast.postman_collection.json"),
        "--environment",
        str(POSTMAN / "azure.postman_environment.json"),
        "--reporters",
        "json",
        "--reporter-json-export",
        str(report),
    ]
    for key, value in variables.items():
        command += ["--env-var", f"{key}={value}"]
    for folder in folders:
        command += ["--folder", folder]
    subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    return json.loads(report.read_text())["run"]


def _assertions(run: dict, request: str) -> dict[str, bool]:
    found = {}
    for execution in run["executions"]:
        if execution["item"]["name"] == request:
            for assertion in execution.get("assertions", []):
                found[assertion["assertion"]] = "error" not in assertion
    return found


def test_token_step_gets_a_client_credentials_token_and_sends_it(
    tmp_path: Path, aad: FakeAad, fhir_api: BearerApi
) -> None:
    fhir_api.accept = lambda token: True
    run = _newman(
        tmp_path,
        {
            "fhirUrl": fhir_api.url,
            "tokenUrl": aad.v2_token_uri(),
            "clientId": "dicomcast-client",
            "clientSecret": aad.clients["dicomcast-client"],
            "studyUid": "1.2.3",
        },
        ["1 Auth", "2 ImagingStudy"],
    )
    assert _assertions(run, "Get token (client credentials, Entra ID)") == {"status 200": True, "a bearer token": True}
    form = aad.forms[0]
    assert (form["grant_type"], form["scope"]) == ("client_credentials", f"{fhir_api.url}/.default")
    assert fhir_api.seen and set(fhir_api.seen) == {"aad-token-1"}


def test_token_step_fails_on_a_wrong_secret(tmp_path: Path, aad: FakeAad, fhir_api: BearerApi) -> None:
    variables = {"fhirUrl": fhir_api.url, "tokenUrl": aad.v2_token_uri(), "clientId": "dicomcast-client"}
    run = _newman(tmp_path, {**variables, "clientSecret": "wrong"}, ["1 Auth"])
    assert _assertions(run, "Get token (client credentials, Entra ID)")["status 200"] is False
    assert run["stats"]["assertions"]["failed"] >= 1
