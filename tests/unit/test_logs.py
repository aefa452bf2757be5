"""The log lines themselves: fields and their order, redaction, exceptions, levels, stdlib records."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any

import pytest
import structlog

from dicomcast.logs import configure_logging, get_logger

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """The logging set-up as it was (configure_logging binds the stream it finds)."""
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    levels = {name: logging.getLogger(name).level for name in ("httpx", "dicomcast.quiet")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    structlog.configure(**config)


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _json(level: str = "INFO") -> io.StringIO:
    out = io.StringIO()
    with redirect_stdout(out):
        configure_logging(level, "json")  # binds the lines to `out`
    return out


@pytest.mark.usefixtures("logging_restored")
def test_an_event_is_one_json_line_its_fields_first_then_event_level_logger_timestamp() -> None:
    out = _json()
    get_logger("dicomcast.worker").info("study", study_uid="1.2.3", entries=1, written=True, ms=0.5)
    [line] = _lines(out)
    assert list(line) == ["study_uid", "entries", "written", "ms", "event", "level", "logger", "timestamp"]
    assert line["event"] == "study" and line["level"] == "info" and line["logger"] == "dicomcast.worker"
    assert (line["study_uid"], line["entries"], line["written"], line["ms"]) == ("1.2.3", 1, True, 0.5)
    assert STAMP.match(line["timestamp"])
    assert out.getvalue().count("\n") == 1


@pytest.mark.usefixtures("logging_restored")
def test_urls_are_redacted_in_every_string_field_and_other_values_kept() -> None:
    out = _json()
    get_logger("dicomcast.t").warning(
        "GET https://ana:pw@host/x?sig=S3CRET", error="at https://h/v2?code=C0DE", n=3, ok=None, items=["a"]
    )
    [line] = _lines(out)
    assert line["event"] == "GET https://host/x?sig=***" and line["error"] == "at https://h/v2?code=***"
    assert (line["n"], line["ok"], line["items"], line["level"]) == (3, None, ["a"], "warning")
    assert "pw" not in out.getvalue() and "S3CRET" not in out.getvalue() and "C0DE" not in out.getvalue()


@pytest.mark.usefixtures("logging_restored")
def test_an_exception_is_its_type_message_and_frames_without_locals() -> None:
    out = _json()
    secret = "local-value-7"  # noqa: F841 - a frame's local: never in the line
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("dicomcast.t").exception("failed", where="here")
    [line] = _lines(out)
    assert (line["event"], line["level"], line["where"]) == ("failed", "error", "here")
    [exception] = line["exception"]
    assert exception["exc_type"] == "RuntimeError" and exception["exc_value"] == "boom"
    assert exception["frames"] and all(set(f) <= {"filename", "lineno", "name", "line"} for f in exception["frames"])
    assert "local-value-7" not in out.getvalue()


@pytest.mark.usefixtures("logging_restored")
def test_levels_filter_events_and_quiet_libraries() -> None:
    out = _json("WARNING")
    log = get_logger("dicomcast.t")
    log.info("not shown")
    log.debug("not shown")
    log.warning("shown", n=1)
    log.error("shown too")
    logging.getLogger("httpx").warning("library %s", "warning")
    logging.getLogger("httpx").info("library info: held back")
    assert [(line["event"], line["level"]) for line in _lines(out)] == [
        ("shown", "warning"),
        ("shown too", "error"),
        ("library warning", "warning"),
    ]


@pytest.mark.usefixtures("logging_restored")
def test_a_library_record_is_the_same_json_with_its_url_redacted() -> None:
    out = _json()
    logging.getLogger("dicomcast.quiet").setLevel(logging.INFO)
    logging.getLogger("dicomcast.quiet").info("HTTP Request: GET %s", "https://u:pw@h/p?token=T0K")
    [line] = _lines(out)
    assert line == {
        "event": "HTTP Request: GET https://h/p?token=***",
        "level": "info",
        "logger": "dicomcast.quiet",
        "timestamp": line["timestamp"],
    }
    assert STAMP.match(line["timestamp"])


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.usefixtures("logging_restored")
def test_other_handlers_see_the_event_and_its_exception() -> None:
    """A handler added beside dicomcast's (pytest's caplog, a debugging one) gets each record whole."""
    _json()
    handler = _Kept()
    seen = handler.records
    logging.getLogger().addHandler(handler)
    try:
        get_logger("dicomcast.t").info("event", n=1)
        logging.getLogger("dicomcast.lib").error("lib", exc_info=ValueError("v"))
    finally:
        logging.getLogger().removeHandler(handler)
    assert [(r.name, r.levelno) for r in seen] == [("dicomcast.t", logging.INFO), ("dicomcast.lib", logging.ERROR)]
    assert seen[0].msg["event"] == "event" and seen[0].msg["n"] == 1  # type: ignore[index]
    assert seen[1].exc_info is not None and seen[1].exc_info[0] is ValueError


@pytest.mark.usefixtures("logging_restored")
def test_the_console_format_is_one_line_per_event() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        configure_logging("INFO", "console")
    get_logger("dicomcast.t").info("study", study_uid="1.2.3", error="at https://a:b@h/x")
    text = out.getvalue()
    assert text.count("\n") == 1 and "study" in text and "study_uid=1.2.3" in text
    assert "a:b@" not in text and "https://h/x" in text
