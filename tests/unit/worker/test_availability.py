"""Staying up: backoff is capped, outages are logged once per change, reasons carry no server text."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import structlog

from dicomcast.errors import AuthError, ConfigError, PermanentUpstreamError, StoreError, TransientUpstreamError
from dicomcast.worker.availability import (
    RETRY_CAP,
    Availability,
    Backoff,
    StopRequested,
    safe_reason,
    wait_until_available,
)
from dicomcast.worker.health import Probes
from dicomcast.worker.state import WorkerState

SERVER_TEXT = "Patient Doe^Jane born 19700101 rejected"


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff()
    delays = [backoff.next_delay() for _ in range(20)]
    assert delays[0] < delays[3] < delays[6]
    assert max(delays) <= RETRY_CAP.total_seconds()
    assert delays[-1] >= RETRY_CAP.total_seconds() * 0.8
    backoff.reset()
    assert backoff.next_delay() <= 1.2


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TransientUpstreamError("FHIR server", f"GET /metadata: {SERVER_TEXT}"), "FHIR server unreachable"),
        (
            PermanentUpstreamError("Orthanc", f"GET /changes: {SERVER_TEXT}", status=404),
            "Orthanc answered HTTP 404 (PermanentUpstreamError)",
        ),
        (AuthError(f"FHIR server answered 403 to GET /metadata: {SERVER_TEXT}"), "FHIR server answered HTTP 403"),
        (AuthError(f"DicomWeb: managed identity could not get a token ({SERVER_TEXT})"), "DicomWeb refused"),
        (AuthError(f"{SERVER_TEXT} 401"), "a server answered HTTP 401 (AuthError)"),
        (StoreError(f"cannot read the store: {SERVER_TEXT}"), "store unavailable (StoreError)"),
        (ValueError(SERVER_TEXT), "unexpected ValueError"),
    ],
)
def test_safe_reason_names_service_status_and_class_only(error: Exception, reason: str) -> None:
    text = safe_reason(error)
    assert text.startswith(reason)
    assert "Doe" not in text and "1970" not in text and "rejected" not in text


def test_an_outage_is_logged_when_it_starts_changes_and_ends() -> None:
    board = Availability()
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):
            board.down("FHIR server", TransientUpstreamError("FHIR server", "GET /metadata: ConnectError"))
        board.down("FHIR server", AuthError("FHIR server answered 403 to GET /metadata"))
        assert board.problems() == {"FHIR server": "FHIR server answered HTTP 403 (AuthError)"}
        board.up("FHIR server")
        board.up("FHIR server")
    assert [entry["event"] for entry in logs] == [
        "FHIR server unavailable, retrying",
        "FHIR server unavailable, retrying",
        "FHIR server available",
    ]
    assert board.problems() == {}


def test_wait_until_available_waits_out_refusals_and_ends_on_configuration() -> None:
    answers: list[Any] = [
        TransientUpstreamError("FHIR server", "x"),
        AuthError("FHIR server answered 401 to GET /metadata"),
        PermanentUpstreamError("FHIR server", "x", status=404),
        "capabilities",
    ]

    def attempt() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    board = Availability()
    fast = Backoff(cap=RETRY_CAP * 0)
    assert wait_until_available("FHIR server", attempt, board, threading.Event(), fast) == "capabilities"
    assert board.problems() == {}

    def bad_settings() -> str:
        raise ConfigError(["Fhir:Endpoint: required"])

    with pytest.raises(ConfigError):
        wait_until_available("FHIR server", bad_settings, board, threading.Event(), fast)


def test_a_stop_request_ends_the_wait() -> None:
    stop = threading.Event()

    def down() -> str:
        stop.set()
        raise TransientUpstreamError("FHIR server", "x")

    with pytest.raises(StopRequested):
        wait_until_available("FHIR server", down, Availability(), stop)


def test_readyz_says_starting_with_the_reason_before_the_worker_is_built() -> None:
    board = Availability()
    board.down("FHIR server", AuthError(f"FHIR server answered 403 to GET /metadata: {SERVER_TEXT}"))
    probes = Probes(WorkerState(), [], None, RETRY_CAP, availability=board)
    verdict = probes.readyz()
    assert not verdict.ok
    assert verdict.body["status"] == "starting"
    assert verdict.body["unavailable"] == {"FHIR server": "FHIR server answered HTTP 403 (AuthError)"}
    assert probes.healthz().ok
