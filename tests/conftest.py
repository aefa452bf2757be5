"""Shared fixtures: real peers on loopback, started once per test session where possible."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import peers


@pytest.fixture(scope="session")
def orthanc_session() -> Iterator[peers.Peer]:
    peer = peers.start_orthanc()
    yield peer
    peer.stop()


@pytest.fixture
def orthanc() -> Iterator[peers.Peer]:
    """A fresh Orthanc per test (its change log starts at 0)."""
    peer = peers.start_orthanc()
    yield peer
    peer.stop()


@pytest.fixture
def fhir_server() -> Iterator[peers.Peer]:
    """A fresh, empty sekmet FHIR R4 server per test."""
    peer = peers.start_fhir()
    yield peer
    peer.stop()
