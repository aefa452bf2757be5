"""Operations against real peers: the health/metrics listener of a running `dicomcast run`,
`dicomcast status` while it runs, and `dicomcast check` passing and failing per dependency."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import peers
from tests.integration.sync_helpers import dicomcast, json_lines, orthanc_env, start_dicomcast
from tests.sample_data import sample_files
from tests.servers.aad import FakeAad

pytestmark = pytest.mark.integration
WAIT_S = 120  # an upper bound for a state to be reached, never a measured duration


def _wait_for(what: str, probe: callable, log: Path | None = None) -> object:  # type: ignore[valid-type]
    deadline = time.monotonic() + WAIT_S
    last: object = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log else ""
    raise AssertionError(f"{what} not reached; last: {last!r}\n{tail}")


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _metric(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _orthanc_last_seq(orthanc: peers.Peer) -> int:
    auth = (orthanc.extra["username"], orthanc.extra["password"])
    return int(httpx.get(f"{orthanc.url}/changes", params={"last": ""}, auth=auth).json()["Last"])


@pytest.fixture
def synced_worker(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str, dict[str, str], list[Path], Path]]:
    files = sample_files(tmp_path / "dicom")
    peers.upload_to_orthanc(orthanc, files)
    port = peers.free_port()
    env = orthanc_env(
        orthanc,
        fhir_server,
        tmp_path / "store.db",
        DicomCastWorker__HttpPort=str(port),
        DicomCastWorker__HttpHost="127.0.0.1",
        RetryConfiguration__MaxAttempts="1",
    )
    log = tmp_path / "worker.log"
    worker = start_dicomcast(["run"], env, log)
    try:
        yield worker, f"http://127.0.0.1:{port}", env, files, log
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()


def test_running_worker_serves_health_ready_metrics_and_status(
    synced_worker: tuple[subprocess.Popen[bytes], str, dict[str, str], list[Path], Path], orthanc: peers.Peer
) -> None:
    worker, base, env, files, log = synced_worker
    source = f"orthanc:{orthanc.url}"
    uploaded_seq = _orthanc_last_seq(orthanc)  # Orthanc adds Stable* changes later: the end moves on

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    _wait_for("ready", ready, log)
    body = httpx.get(f"{base}/readyz").json()
    assert body["status"] == "ready"
    assert body["store"] == "ok"
    assert body["sources"][source]["ready"] is True
    health = httpx.get(f"{base}/healthz")
    assert health.status_code == 200
    assert health.json()["sources"][source]["stuck"] is False

    def caught_up_metrics() -> dict | None:
        samples = _samples(httpx.get(f"{base}/metrics").text)
        return samples if _metric(samples, "dicomcast_feed_lag_sequences", source=source) == 0 else None

    samples = _wait_for("lag 0 on /metrics", caught_up_metrics, log)
    assert isinstance(samples, dict)
    instances = _metric(samples, "dicomcast_instances_synced_total", source=source, action="create")
    assert instances == len(files)
    assert _metric(samples, "dicomcast_entries_total", source=source, action="create", outcome="synced") == len(files)
    checkpoint = _metric(samples, "dicomcast_checkpoint_sequence", source=source)
    assert checkpoint is not None and checkpoint >= uploaded_seq
    assert (_metric(samples, "dicomcast_fhir_request_seconds_count", method="POST", status="200") or 0) > 0
    assert _metric(samples, "dicomcast_last_cycle_success", source=source) == 1

    status = dicomcast(["status", "--compact"], env)
    assert status.returncode == 0, status.stderr
    state = json_lines(status.stdout)[0]
    assert int(state["sources"][source]["checkpoint"]["cursor"]) >= checkpoint
    assert state["sources"][source]["lease"]["expired"] is False
    assert state["sources"][source]["lease"]["owner"].count(":") >= 2
    assert state["open_failures"] == 0

    checked = dicomcast(["check"], env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    orthanc.stop()  # the next cycle fails: not ready, yet alive

    def not_ready() -> dict | None:
        response = httpx.get(f"{base}/readyz")
        return response.json() if response.status_code == 503 else None

    problem = _wait_for("not ready after Orthanc stopped", not_ready, log)
    assert isinstance(problem, dict)
    assert problem["sources"][source]["problem"].startswith("last cycle failed: Orthanc")
    assert httpx.get(f"{base}/healthz").status_code == 200

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0


# -- dicomcast check ------------------------------------------------------------------------------
def _check(env: dict[str, str]) -> tuple[int, dict[str, str]]:
    result = dicomcast(["check"], env)
    lines = {}
    for line in result.stdout.splitlines():
        status, _, rest = line.partition(" ")
        name, _, detail = rest.strip().partition(": ")
        lines[name.split(" (")[0]] = f"{status} {detail}"
    return result.returncode, lines


def _failed(lines: dict[str, str]) -> list[str]:
    return [name for name, line in lines.items() if line.startswith("FAIL")]


@pytest.fixture
def synced_env(orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path) -> dict[str, str]:
    peers.upload_to_orthanc(orthanc, sample_files(tmp_path / "dicom", extra_instances=0))
    env = orthanc_env(orthanc, fhir_server, tmp_path / "store.db", RetryConfiguration__MaxAttempts="1")
    assert dicomcast(["run", "--once"], env).returncode == 0
    return env


def test_check_passes_with_every_dependency_up(synced_env: dict[str, str], orthanc: peers.Peer) -> None:
    code, lines = _check(synced_env)
    assert code == 0, lines
    assert list(lines) == [
        "settings",
        "Key Vault",
        "DICOM token",
        "DICOM change feed",
        "FHIR token",
        "FHIR server",
        "store",
    ]
    assert lines["DICOM change feed"].startswith("ok Orthanc /changes reachable, latest sequence ")
    assert lines["FHIR server"] == "ok FHIR 4.0.1 (R4), transaction supported"
    assert lines["store"] == "ok reachable, schema migrated"
    assert orthanc.extra["password"] not in str(lines)


def test_check_fails_on_a_wrong_fhir_url(synced_env: dict[str, str], fhir_server: peers.Peer) -> None:
    code, lines = _check({**synced_env, "Fhir__Endpoint": fhir_server.url + "-nope"})
    assert _failed(lines) == ["FHIR server"]
    assert "HTTP 404" in lines["FHIR server"]
    assert code == 69


def test_check_fails_when_orthanc_is_down(synced_env: dict[str, str], orthanc: peers.Peer) -> None:
    orthanc.stop()
    code, lines = _check(synced_env)
    assert _failed(lines) == ["DICOM change feed"]
    assert "ConnectError" in lines["DICOM change feed"]
    assert code == 69


@pytest.mark.parametrize(
    ("store_url", "detail"),
    [
        ("sqlite:///{tmp}/elsewhere/store.db", "no database file"),
        ("postgresql+psycopg://dicomcast:pw-not-shown@127.0.0.1:{port}/dicomcast", "cannot read the store"),
        ("mongodb://127.0.0.1/dicomcast", "Store:ConnectionString is not usable"),
    ],
)
def test_check_fails_on_a_bad_store_url(
    synced_env: dict[str, str], tmp_path: Path, store_url: str, detail: str
) -> None:
    url = store_url.format(tmp=tmp_path, port=peers.free_port())  # a free port: nothing listens there
    code, lines = _check({**synced_env, "Store__ConnectionString": url})
    assert _failed(lines) == ["store"]
    assert detail in lines["store"]
    assert "pw-not-shown" not in str(lines)
    assert code == 69


def test_check_fails_on_wrong_orthanc_credentials(synced_env: dict[str, str]) -> None:
    env = {**synced_env, "DicomWeb__Authentication__BasicCredential__Password": "wrong-password"}
    code, lines = _check(env)
    assert _failed(lines) == ["DICOM change feed"]
    assert "refused the user name and password" in lines["DICOM change feed"]
    assert "wrong-password" not in str(lines)
    assert code == 77


@pytest.fixture
def aad() -> Iterator[FakeAad]:
    with FakeAad() as server:
        yield server


def _fhir_oauth2(env: dict[str, str], aad: FakeAad, secret: str) -> dict[str, str]:
    prefix = "Fhir__Authentication__"
    return {
        **env,
        f"{prefix}Enabled": "true",
        f"{prefix}AuthenticationType": "OAuth2ClientCredential",
        f"{prefix}OAuth2ClientCredential__TokenUri": aad.v2_token_uri(),
        f"{prefix}OAuth2ClientCredential__Scope": f"{env['Fhir__Endpoint']}/.default",
        f"{prefix}OAuth2ClientCredential__ClientId": "dicomcast-client",
        f"{prefix}OAuth2ClientCredential__ClientSecret": secret,
    }


def test_check_obtains_a_fhir_token(synced_env: dict[str, str], aad: FakeAad) -> None:
    code, lines = _check(_fhir_oauth2(synced_env, aad, aad.clients["dicomcast-client"]))
    assert code == 0, lines
    assert lines["FHIR token"] == "ok OAuth2ClientCredential token obtained"
    assert "aad-token" not in str(lines)


def test_check_fails_on_a_wrong_client_secret(synced_env: dict[str, str], aad: FakeAad) -> None:
    code, lines = _check(_fhir_oauth2(synced_env, aad, "not-the-secret"))
    assert _failed(lines)[0] == "FHIR token"
    assert "invalid_client" in lines["FHIR token"]
    assert "not-the-secret" not in str(lines)
    assert code == 77
