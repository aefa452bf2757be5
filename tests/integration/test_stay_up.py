"""`dicomcast run` stays up: dependencies down, refusing or answering 401/403, at start-up or later,
are waited out by the same process (never restarted), and /readyz says why without server text.

Faults are driven by events (what /readyz and FHIR say), never by timings: each wait is a bounded
poll with a generous timeout.
"""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from tests import peers
from tests.integration import bulk_data
from tests.integration.sync_helpers import json_lines, orthanc_env, snapshot, start_dicomcast
from tests.servers.faulty_proxy import FaultyProxy, Rule, outcome

pytestmark = pytest.mark.integration

ECHO = "Doe^Jane 19700101 PID-4711"  # what a hostile server writes into its error bodies
# A reason names a service, says what happened, and the error class: nothing else.
REASON = re.compile(r"^[\w ]+ (unreachable|answered HTTP \d{3}|refused the credentials) \(\w+\)$")
WAIT = 420.0  # seconds: backoff is capped at 2 minutes, and the machine may be busy


def _until(what: str, check: Callable[[], Any], process: subprocess.Popen[bytes], log: Path) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"dicomcast exited ({process.returncode}): {log.read_text()[-3000:]}"
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {log.read_text()[-3000:]}")


def _readyz(port: int) -> tuple[int, dict[str, Any]] | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    except httpx.HTTPError:
        return None
    return response.status_code, response.json()


def _reasons(body: dict[str, Any]) -> list[str]:
    found = list(body.get("unavailable", {}).values())
    found += [
        s["problem"].removeprefix("last cycle failed: ") for s in body.get("sources", {}).values() if s["problem"]
    ]
    return [r for r in found if r not in ("no cycle finished yet",)]


def _not_ready_because(port: int, wanted: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        answer = _readyz(port)
        if answer is None or answer[0] != 503:
            return None
        body = answer[1]
        return body if any(wanted in reason for reason in _reasons(body)) else None

    return check


def _ready(port: int) -> Callable[[], bool]:
    return lambda: (_readyz(port) or (0, {}))[0] == 200


def _synced(fhir_url: str, bulk: bulk_data.Bulk) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return bulk_data.exact(snapshot(SimpleNamespace(url=fhir_url)), bulk) == []  # type: ignore[arg-type]
        except (httpx.HTTPError, ValueError):
            return False

    return check


def _assert_safe(body: dict[str, Any]) -> None:
    for reason in _reasons(body):
        assert REASON.match(reason), reason
    assert ECHO not in str(body) and "injected" not in str(body)


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=120)


def _env(orthanc_url: str, fhir_url: str, store: Path, http_port: int) -> dict[str, str]:
    orthanc = SimpleNamespace(
        url=orthanc_url, extra={"username": peers.ORTHANC_USER, "password": peers.ORTHANC_PASSWORD}
    )
    return orthanc_env(
        orthanc,  # type: ignore[arg-type]
        SimpleNamespace(url=fhir_url),  # type: ignore[arg-type]
        store,
        DicomCastWorker__HttpHost="127.0.0.1",
        DicomCastWorker__HttpPort=str(http_port),
        RetryConfiguration__MaxAttempts="2",
        RetryConfiguration__TotalRetryDuration="5s",
    )


def test_both_servers_down_at_start_then_up_same_process_syncs(tmp_path: Path) -> None:
    orthanc_port, fhir_port, http_port = peers.free_port(), peers.free_port(), peers.free_port()
    fhir_url = f"http://127.0.0.1:{fhir_port}/fhir"
    env = _env(f"http://127.0.0.1:{orthanc_port}", fhir_url, tmp_path / "store.db", http_port)
    log = tmp_path / "dicomcast.log"
    process = start_dicomcast(["run"], env, log)
    started: list[peers.Peer] = []
    try:
        body = _until("readyz 503: FHIR down", _not_ready_because(http_port, "FHIR server unreachable"), process, log)
        _assert_safe(body)
        assert body["status"] == "starting"
        _until("healthz alive", lambda: _get(http_port, "/healthz") == 200, process, log)
        held_down_until = time.monotonic() + 60  # both servers stay down about a minute
        while time.monotonic() < held_down_until:
            assert process.poll() is None
            assert (_readyz(http_port) or (503, {}))[0] == 503
            time.sleep(2)

        (tmp_path / "fhir").mkdir()
        (tmp_path / "orthanc").mkdir()
        started.append(peers.start_fhir(tmp_path / "fhir", port=fhir_port))
        started.append(peers.start_orthanc(tmp_path / "orthanc", port=orthanc_port))
        bulk = bulk_data.make_bulk("stayup", 3, 3)
        bulk_data.upload(started[1], bulk.instances)

        _until("FHIR holds every study", _synced(fhir_url, bulk), process, log)
        _until("readyz 200", _ready(http_port), process, log)
        assert process.poll() is None  # the same process, never restarted
    finally:
        code = _stop(process) if process.poll() is None else process.returncode
        for peer in started:
            peer.stop()
    assert code == 0, log.read_text()[-3000:]
    lines = json_lines(log.read_text())
    events = [line["event"] for line in lines]
    down = [line["reason"] for line in lines if line["event"] == "FHIR server unavailable, retrying"]
    assert down and all(a != b for a, b in itertools.pairwise(down))  # a line per change, not per attempt
    assert down[0] == "FHIR server unreachable (TransientUpstreamError)"
    assert events.count("FHIR server available") == 1
    assert events.index("FHIR server unavailable, retrying") < events.index("FHIR server available")
    assert not any(line.get("event") == "retrying" for line in lines)


def _get(port: int, path: str) -> int:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).status_code
    except httpx.HTTPError:
        return 0


def test_401_and_403_at_start_and_while_running_are_waited_out(
    orthanc: peers.Peer, fhir_server: peers.Peer, tmp_path: Path
) -> None:
    bulk = bulk_data.make_bulk("refused", 2, 2)
    bulk_data.upload(orthanc, bulk.instances[:2])
    forbidden = Rule(lambda m, p, b: True, 403, outcome(ECHO))
    unauthorized = Rule(lambda m, p, b: True, 401, {"error": ECHO})
    fhir_base = httpx.URL(fhir_server.url)
    fhir_proxy = FaultyProxy(f"http://{fhir_base.netloc.decode()}", rate=0.0, rules=[forbidden]).start()
    orthanc_proxy = FaultyProxy(orthanc.url, rate=0.0, rules=[unauthorized]).start()
    http_port = peers.free_port()
    env = _env(orthanc_proxy.url, f"{fhir_proxy.url}{fhir_base.path}", tmp_path / "store.db", http_port)
    log = tmp_path / "dicomcast.log"
    process = start_dicomcast(["run"], env, log)
    try:
        # start-up: the FHIR server refuses (a role assignment not yet propagated)
        body = _until("readyz: FHIR 403", _not_ready_because(http_port, "FHIR server answered HTTP 403"), process, log)
        _assert_safe(body)
        fhir_proxy.rules.clear()
        # then Orthanc refuses the password: the source waits, FHIR was detected
        body = _until("readyz: Orthanc 401", _not_ready_because(http_port, "HTTP 401"), process, log)
        _assert_safe(body)
        orthanc_proxy.rules.clear()
        first = bulk_data.Bulk(bulk.instances[:2])
        _until("first study synced", _synced(fhir_server.url, first), process, log)
        _until("readyz 200", _ready(http_port), process, log)

        # while running: FHIR answers 403 to everything; new images wait, the process stays
        fhir_proxy.rules.append(forbidden)
        bulk_data.upload(orthanc, bulk.instances[2:])
        body = _until("readyz: 403 mid-run", _not_ready_because(http_port, "HTTP 403"), process, log)
        _assert_safe(body)
        fhir_proxy.rules.clear()
        _until("everything synced", _synced(fhir_server.url, bulk), process, log)
        _until("readyz 200 again", _ready(http_port), process, log)
    finally:
        code = _stop(process) if process.poll() is None else process.returncode
        fhir_proxy.stop()
        orthanc_proxy.stop()
    assert code == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert ECHO not in text
    assert bulk_data.check_no_duplicates(snapshot(fhir_server)) == []
