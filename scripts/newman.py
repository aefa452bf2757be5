"""Runs the Postman collection (deploy/postman/) with newman against a local FHIR server that
dicomcast filled: starts Orthanc and sekmet on loopback, stores the sample studies (plus an X-Ray
dose SR in the CT study, so the dose request has Observations to check), syncs them with the real
`dicomcast run --once`, then runs newman with the local environment. Exits non-zero on any failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import peers  # noqa: E402
from tests.integration.sync_helpers import dicomcast, orthanc_env  # noqa: E402
from tests.sample_data import bundled, sample_files  # noqa: E402
from tests.unit.mapping.builders import dose_sr  # noqa: E402

POSTMAN = ROOT / "deploy" / "postman"
NEWMAN = POSTMAN / "node_modules" / ".bin" / "newman"
FROM_THE_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
    "TimezoneOffsetFromUTC",
)


def dose_sr_of_ct_study(target: Path) -> Path:
    """The builders' X-Ray Radiation Dose SR, moved into CT_small's study and patient."""
    ct = pydicom.dcmread(bundled("CT_small.dcm"), stop_before_pixels=True)
    sr = Dataset.from_json(dose_sr())
    for keyword in ("IssuerOfAccessionNumberSequence", "TimezoneOffsetFromUTC"):
        if keyword in sr:
            delattr(sr, keyword)
    for keyword in FROM_THE_STUDY:
        if keyword in ct:
            setattr(sr, keyword, ct.data_element(keyword).value)  # type: ignore[union-attr]
    prefix = "1.2.826.0.1.3680043.10.1234."
    sr.SeriesInstanceUID = generate_uid(prefix=prefix, entropy_srcs=["newman-dose-series"])
    sr.SOPInstanceUID = generate_uid(prefix=prefix, entropy_srcs=["newman-dose-instance"])
    sr.SeriesNumber = 99
    sr.file_meta = FileMetaDataset()
    sr.file_meta.MediaStorageSOPClassUID = sr.SOPClassUID
    sr.file_meta.MediaStorageSOPInstanceUID = sr.SOPInstanceUID
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr.save_as(target, enforce_file_format=True)
    return target


def run_newman(fhir_url: str, work: Path) -> int:
    report = work / "newman.json"
    command = [
        str(NEWMAN),
        "run",
        str(POSTMAN / "dicomcast.postman_collection.json"),
        "--environment",
        str(POSTMAN / "local.postman_environment.json"),
        "--env-var",
        f"fhirUrl={fhir_url}",
        "--env-var",
        "expectDoseObservations=true",
        "--reporters",
        "cli,json",
        "--reporter-json-export",
        str(report),
        "--color",
        "off",
        "--no-insecure-file-read",
    ]
    code = subprocess.run(command, check=False).returncode
    if not report.exists():
        print("newman: no report written", file=sys.stderr)
        return code or 1
    stats = json.loads(report.read_text())["run"]["stats"]
    requests, assertions = stats["requests"], stats["assertions"]
    print(
        f"newman: {requests['total']} requests ({requests['failed']} failed), "
        f"{assertions['total']} assertions, {assertions['failed']} failed"
    )
    failed = requests["failed"] + assertions["failed"]
    return code or (1 if failed else 0)


def main() -> int:
    if not NEWMAN.exists():
        print("newman is not installed: run scripts/setup.sh (npm ci in deploy/postman)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="dicomcast-newman-") as tmp:
        work = Path(tmp)
        orthanc, fhir = peers.start_orthanc(), None
        try:
            fhir = peers.start_fhir()
            files = [*sample_files(work / "dicom"), dose_sr_of_ct_study(work / "dose-sr.dcm")]
            peers.upload_to_orthanc(orthanc, files)
            synced = dicomcast(["run", "--once"], orthanc_env(orthanc, fhir, work / "store.db"))
            if synced.returncode != 0:
                print(synced.stdout[-3000:], synced.stderr[-3000:], sep="\n", file=sys.stderr)
                return synced.returncode
            print(f"synced {len(files)} instances from Orthanc to {fhir.url}")
            return run_newman(fhir.url, work)
        finally:
            orthanc.stop()
            if fhir is not None:
                fhir.stop()


if __name__ == "__main__":
    sys.exit(main())
