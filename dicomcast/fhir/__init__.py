"""FHIR side: the client (transactions, If-Match, version detection) and the pure mapping."""
