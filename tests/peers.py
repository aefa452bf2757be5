"""Real test peers on loopback: Orthanc (Debian package) and the sekmet FHIR R4 server (own venv).

Used by the test fixtures and by `scripts/demo.sh`. Each peer runs in its own temporary directory on a
free 127.0.0.1 port and is stopped by PID. Orthanc cannot bind one address (it listens on 0.0.0.0) but
refuses non-local HTTP with RemoteAccessAllowed=false.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SEKMET = Path(os.environ.get("DICOMCAST_SEKMET", ROOT / ".tools" / "fhir-venv" / "bin" / "sekmet"))
ORTHANC = os.environ.get("DICOMCAST_ORTHANC", "/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
ORTHANC_USER, ORTHANC_PASSWORD = "dicomcast", "orthanc-test-password"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, auth: tuple[str, str] | None, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url, auth=auth, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start in 60 s: {log.read_text(errors='replace')[-2000:]}")


@dataclass
class Peer:
    process: subprocess.Popen[bytes]
    workdir: Path
    url: str
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_orthanc(workdir: Path | None = None, port: int | None = None) -> Peer:
    """Orthanc + DICOMweb plugin with Basic auth, StableAge 1 s, DICOM port off (on `port` if given)."""
    if not Path(ORTHANC).exists():
        raise RuntimeError("Orthanc is not installed: run scripts/setup.sh (apt-get install orthanc orthanc-dicomweb)")
    work = workdir or Path(tempfile.mkdtemp(prefix="dicomcast-orthanc-"))
    port = port or free_port()
    config = {
        "Name": "dicomcast-test",
        "StorageDirectory": str(work / "db"),
        "IndexDirectory": str(work / "db"),
        "Plugins": [DICOMWEB_PLUGIN],
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {ORTHANC_USER: ORTHANC_PASSWORD},
        "DicomServerEnabled": False,
        "OrthancExplorerEnabled": False,
        "WebDavEnabled": False,
        "StableAge": 1,
        "SaveJobs": False,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Ssl": False},
    }
    (work / "orthanc.json").write_text(json.dumps(config))
    log = work / "orthanc.log"
    with log.open("wb") as out:  # the child has its own copy of the file
        process = subprocess.Popen(
            [ORTHANC, str(work / "orthanc.json")], cwd=work, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    _wait(f"{url}/system", (ORTHANC_USER, ORTHANC_PASSWORD), process, log)
    return Peer(process, work, url, log, {"username": ORTHANC_USER, "password": ORTHANC_PASSWORD})


def start_fhir(workdir: Path | None = None, token: str | None = None, port: int | None = None) -> Peer:
    """sekmet-fhir (FHIR R4, SQLite) with auth none, or a static bearer token (on `port` if given)."""
    if not SEKMET.exists():
        raise RuntimeError(f"sekmet-fhir is not installed at {SEKMET}: run scripts/setup.sh")
    work = workdir or Path(tempfile.mkdtemp(prefix="dicomcast-fhir-"))
    port = port or free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    auth = f"{{types: [bearer], tokens: [{token}]}}" if token else "{types: [none]}"
    (work / "settings.yaml").write_text(
        f"base_url: {base}\nhost: 127.0.0.1\nport: {port}\ndata_dir: {work / 'data'}\n"
        f"simulator: {{enabled: false}}\nserver_auth: {auth}\nvalidation: {{inbound: strict}}\n"
        "log_inbound: false\n"
    )
    log = work / "fhir.log"
    with log.open("wb") as out:  # the child has its own copy of the file
        process = subprocess.Popen(
            [str(SEKMET), "serve", "-c", str(work / "settings.yaml")], cwd=work, stdout=out, stderr=subprocess.STDOUT
        )
    _wait(f"{base}/metadata", None, process, log)
    return Peer(process, work, base, log)


def upload_to_orthanc(orthanc: Peer, files: list[Path]) -> None:
    auth = (orthanc.extra["username"], orthanc.extra["password"])
    with httpx.Client(base_url=orthanc.url, auth=auth, timeout=30) as client:
        for path in files:
            response = client.post("/instances", content=path.read_bytes())
            response.raise_for_status()
