"""URLs as dicomcast shows and follows them: secrets redacted, server-given links kept on their origin.

`redact_url` is what every output gets (logs, errors, store rows, metrics labels, source names,
FHIR Endpoint.address and meta.source): the user info (`user:pw@`) is dropped and the value of every
secret-looking query parameter becomes `***`. A URL without either comes back unchanged, so source
names (checkpoint keys) of URLs without credentials are the same as before.

Secret-looking parameters, compared case-insensitively with `-` and `_` ignored: the names in
SECRET_QUERY_NAMES (SAS `sig`, OAuth `code`, `key`, `token`, ...) and any name containing one of
SECRET_NAME_PARTS (`access_token`, `client_secret`, `x-api-key`, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

REDACTED = "***"
SECRET_QUERY_NAMES = frozenset(
    {"sig", "signature", "code", "key", "token", "secret", "password", "passwd", "pwd", "auth", "sas", "skoid"}
)
SECRET_NAME_PARTS = ("token", "secret", "password", "apikey", "signature", "credential", "authorization")
# A URL inside free text (a log message, an error): scheme, then anything up to white space or a quote.
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def is_secret_name(name: str) -> bool:
    folded = name.lower().replace("-", "").replace("_", "")
    return folded in SECRET_QUERY_NAMES or any(part in folded for part in SECRET_NAME_PARTS)


def redact_url(url: str) -> str:
    """`url` without user info and with secret query values replaced; unchanged when it has neither."""
    try:
        parts = urlsplit(url)
        hostname_port = parts.netloc.rpartition("@")[2]
    except ValueError:
        return REDACTED  # not a URL we can take apart: show nothing of it
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(name) for name, _ in pairs):
            query = urlencode([(n, REDACTED if is_secret_name(n) else v) for n, v in pairs], safe="*")
    if hostname_port == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, hostname_port, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URL found in free text, redacted (defence in depth for log lines and messages)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def rebase(link: str, base: httpx.URL) -> httpx.URL:
    """A URL a server handed back (a FHIR `next` link, a Location), moved onto the configured base:
    same path and query, the base's scheme, host, port and user info. Whatever origin the server
    named, the request (and its credentials) goes only to the configured server."""
    given = httpx.URL(link)
    return base.copy_with(raw_path=given.raw_path, fragment=None)


def split_query(url: str) -> tuple[str, str]:
    """(`url` without its query, the query): a base URL's query (a gateway's key) goes on every request."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", parts.fragment)), parts.query


def with_path(url: str, transform: Callable[[str], str]) -> str:
    """`url` with `transform` applied to its path only (query and user info kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, transform(parts.path), parts.query, parts.fragment))
