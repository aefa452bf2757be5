"""Stop/start reload, as in Azure Container Instances: a DICOM Cast-style Key Vault configures the
real worker; a changed secret is in force after a restart, with no lost and no repeated work."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import peers
from tests.integration.sync_helpers import dicomcast, snapshot, versions
from tests.sample_data import bundled, sample_files
from tests.servers import fixtures
from tests.servers.keyvault import FakeKeyVault
from tests.servers.mi_token import MiTokenServer

pytestmark = pytest.mark.integration
key_vault = fixtures.key_vault
managed_identity = fixtures.managed_identity
tls_cert = fixtures.tls_cert


def _env(vault: FakeKeyVault, store: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if "__" not in k}  # nothing but the vault configures it
    env.update(
        {"KeyVault__Endpoint": vault.url, "Store__ConnectionString": f"sqlite:///{store}", "Logging__Format": "json"}
    )
    return env


def test_changed_secret_is_in_force_after_restart_without_lost_or_repeated_work(
    key_vault: FakeKeyVault,
    managed_identity: MiTokenServer,
    orthanc: peers.Peer,
    fhir_server: peers.Peer,
    tmp_path: Path,
) -> None:
    for name, value in {
        "DicomWeb--Endpoint": orthanc.url,
        "DicomWeb--ServerType": "Orthanc",
        "DicomWeb--Authentication--Enabled": "true",
        "DicomWeb--Authentication--AuthenticationType": "Basic",
        "DicomWeb--Authentication--BasicCredential--Username": orthanc.extra["username"],
        "DicomWeb--Authentication--BasicCredential--Password": orthanc.extra["password"],
        "Fhir--Endpoint": fhir_server.url,
        "Patient--PatientSystemId": "urn:oid:1.1.1",
        "TableStore--ConnectionString": "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=eHl6",
    }.items():
        key_vault.set(name, value)
    files = sample_files(tmp_path / "dicom")
    peers.upload_to_orthanc(orthanc, [f for f in files if "MR" not in f.name])
    env = _env(key_vault, tmp_path / "store.db")

    first = dicomcast(["run", "--once"], env)
    assert first.returncode == 0, first.stdout + first.stderr
    before = snapshot(fhir_server)

    key_vault.set("Patient--PatientSystemId", "urn:oid:2.2.2")  # the operator changes a secret...
    peers.upload_to_orthanc(orthanc, [bundled("MR_small.dcm")])  # ...while new images arrive
    config = dicomcast(["config"], env)
    second = dicomcast(["run", "--once"], env)  # ...and stops/starts the container

    assert second.returncode == 0, second.stdout + second.stderr
    assert "Patient:PatientSystemId" in config.stdout and "urn:oid:2.2.2" in config.stdout
    assert "[Key Vault secret Patient--PatientSystemId]" in config.stdout
    after = snapshot(fhir_server)
    old = versions(before)
    assert {k: v for k, v in versions(after).items() if k in old} == old  # nothing written again
    new_studies = set(after["ImagingStudy"]) - set(before["ImagingStudy"])
    assert len(new_studies) == 1  # nothing lost
    subject = after["ImagingStudy"][new_studies.pop()]["subject"]["reference"].removeprefix("Patient/")
    assert after["Patient"][subject]["identifier"][0]["system"] == "urn:oid:2.2.2"  # the new value in force
    for output in (first.stdout + first.stderr, second.stdout + second.stderr, config.stdout):
        assert orthanc.extra["password"] not in output
        assert "eHl6" not in output
