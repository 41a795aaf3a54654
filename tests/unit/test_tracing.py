"""When the OTEL_* variables turn traces on, and what they may not ask for (refused before anything is installed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ppa_contracts import envelope
from ppa_runtime import tracing

PPA = str(Path(sys.executable).parent / "ppa")


@pytest.mark.parametrize(("env", "on"), [
    ({}, False),  # `ppa up` as installed: no exporter, no spans
    ({"OTEL_SERVICE_NAME": "ppa"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
])
def test_traces_are_on_only_when_an_exporter_is_asked_for(env: dict[str, str], on: bool) -> None:
    assert tracing.requested(env) is on


@pytest.mark.parametrize(("env", "says"), [
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "only http/protobuf"),
])
def test_an_exporter_this_build_lacks_is_refused_before_anything_is_installed(env: dict[str, str], says: str) -> None:
    with pytest.raises(tracing.TracingSetupError, match=says):
        tracing.setup("ppa", env)
    assert not tracing.enabled() and envelope.trace_context is None
    assert tracing.event_context() == {}  # off: events carry no trace context


def test_ppa_refuses_to_start_with_an_exporter_it_lacks(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = subprocess.run([PPA, "up", "--data-dir", str(data)], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OTEL_TRACES_EXPORTER": "jaeger"})
    assert done.returncode != 0
    assert "ppa: OTEL_TRACES_EXPORTER=jaeger: not one of otlp, console, none" in done.stderr
    assert not data.exists()  # refused before the platform made anything
