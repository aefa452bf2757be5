"""progress.py: a redrawn line on a terminal, log lines otherwise."""

from __future__ import annotations

import io

from dicomcast.reconcile.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_redrawn_line_with_checked_of_total_rate_and_time_left() -> None:
    stream = Terminal()
    progress = Progress("azure:http://dicom.test/v2", total=100, done=20, stream=stream)
    progress.advance(30, differing=2)
    progress.finish()
    lines = stream.getvalue().split("\r")
    assert "50 of 100 studies checked" in lines[-1] and "/s" in lines[-1] and "s left" in lines[-1]
    assert "2 differing" in lines[-1] and stream.getvalue().endswith("\n")


def test_elsewhere_the_screen_stays_clean() -> None:
    stream = io.StringIO()
    progress = Progress("orthanc:http://dicom.test", total=10, stream=stream)
    progress.advance(10, differing=0)
    progress.finish()
    assert stream.getvalue() == ""  # progress went to the log instead
    assert progress.seconds_left() == 0
