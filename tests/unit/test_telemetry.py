"""telemetry: which connection string is used, and that nothing is configured without one."""

from __future__ import annotations

import sys

from dicomcast import telemetry
from dicomcast.config.settings import ApplicationInsightsSettings


def test_connection_string_wins_over_dicom_cast_key() -> None:
    both = ApplicationInsightsSettings.model_validate(
        {"ConnectionString": "InstrumentationKey=a;X=1", "InstrumentationKey": "b"}
    )
    assert telemetry.connection_string(both) == "InstrumentationKey=a;X=1"
    key = ApplicationInsightsSettings.model_validate({"InstrumentationKey": " b "})
    assert telemetry.connection_string(key) == "InstrumentationKey=b"
    assert telemetry.connection_string(ApplicationInsightsSettings.model_validate({"ConnectionString": " "})) is None


def test_off_without_a_setting_and_span_is_a_no_op() -> None:
    assert telemetry.configure(ApplicationInsightsSettings()) is False
    assert not telemetry.enabled()
    with telemetry.span("dicomcast.page", entries=3) as note:
        note(written=True)
    telemetry.flush()
    assert "azure.monitor.opentelemetry" not in sys.modules
