"""Identifier search tokens: FHIR search escaping of each part."""

from __future__ import annotations

from dicomcast.fhir.mapping.ids import identifier_token


def test_identifier_token_escapes_each_part_as_fhir_search_requires() -> None:
    assert identifier_token("urn:x", "A|B,C$D\\E") == "urn:x|A\\|B\\,C\\$D\\\\E"
    assert identifier_token(None, "P|1") == "|P\\|1"
    assert identifier_token("", "P1") == "|P1"
