"""Runs dicomcast end to end on local real servers and prints what landed in FHIR (see demo.sh)."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import peers  # noqa: E402
from tests.integration.sync_helpers import fetch_all, orthanc_env  # noqa: E402
from tests.sample_data import sample_files  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the servers running (Ctrl-C stops them)")
    args = parser.parse_args()
    work = ROOT / "dicomcast-demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    orthanc, fhir = peers.start_orthanc(), peers.start_fhir()
    try:
        files = sample_files(work / "dicom")
        peers.upload_to_orthanc(orthanc, files)
        print(f"Orthanc  {orthanc.url}  ({len(files)} instances of pydicom's sample studies stored)")
        print(f"FHIR R4  {fhir.url}  (sekmet-fhir, empty)")
        env = orthanc_env(orthanc, fhir, work / "dicomcast.db", Logging__Format="console")
        print("\n$ dicomcast run --once\n", flush=True)
        code = subprocess.call([str(ROOT / ".venv" / "bin" / "dicomcast"), "run", "--once"], env=env, cwd=work)
        print(f"\n(dicomcast exited with {code})\n")
        report(fhir)
        if args.keep:
            print("\nservers keep running; press Ctrl-C to stop them")
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
        return code
    finally:
        orthanc.stop()
        fhir.stop()


def report(fhir: peers.Peer) -> None:
    studies = fetch_all(fhir, "ImagingStudy")
    print(
        f"What landed in FHIR: {len(studies)} ImagingStudy, {len(fetch_all(fhir, 'Patient'))} Patient, "
        f"{len(fetch_all(fhir, 'Endpoint'))} Endpoint, {len(fetch_all(fhir, 'Observation'))} Observation"
    )
    for study in sorted(studies, key=lambda s: s["id"]):
        uid = next((i["value"] for i in study.get("identifier", []) if i.get("system") == "urn:dicom:uid"), "?")
        modalities = ",".join(m.get("code", "?") for m in study.get("modality", []))
        print(
            f"  ImagingStudy/{study['id'][:12]}…  {uid}  modality={modalities or '-'}  "
            f"series={study.get('numberOfSeries')}  instances={study.get('numberOfInstances')}  "
            f"subject={study.get('subject', {}).get('reference', '?')[:20]}…"
        )


if __name__ == "__main__":
    sys.exit(main())
