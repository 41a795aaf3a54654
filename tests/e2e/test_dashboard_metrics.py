"""The Grafana dashboard against a running platform: every metric a panel (or a variable) queries is in the
/metrics of a fresh `ppa up` after a little work, as Prometheus would scrape it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

PPA = str(Path(sys.executable).parent / "ppa")
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "observability" / "grafana" / "ppa-dashboard.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def queried_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    # metric names only: label values and names sit inside {...} or after `by`
    return {name for q in queries for name in re.findall(r"\b(ppa_[a-z_]+)\b(?!\s*[=!~])", q)}


def exported(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_metric_the_dashboard_queries_is_exported_by_a_running_platform(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")}
    env["PPA_LAG_SAMPLE_SECONDS"] = "1"  # the lag gauge is sampled, not counted: soon, for the test
    data = tmp_path / "ppa"
    # work for the relay and the consumers once `ppa up` starts: an agency's sign-up events
    created = subprocess.run([PPA, "agency", "create", "--email", "dash@example.jp", "--password", "password123",
                              "--company", "太陽電力", "--data-dir", str(data)], capture_output=True, text=True, env=env)
    assert created.returncode == 0, created.stderr
    port, metrics_port = free_port(), free_port()
    env["PPA_METRICS_PORT"] = str(metrics_port)  # Prometheus scrapes the metrics listener, not the public port
    proc = subprocess.Popen([PPA, "up", "--port", str(port), "--data-dir", str(data)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stdout is not None
        while "ready:" not in (line := proc.stdout.readline()):
            assert line or proc.poll() is None, "ppa up stopped before it was ready"
        wanted = queried_metrics()
        assert {"ppa_dead_letters_total", "ppa_emails_total", "ppa_consumer_lag",
                "ppa_http_request_duration_seconds_bucket"} <= wanted
        missing = wanted
        deadline = time.monotonic() + 60
        while missing and time.monotonic() < deadline:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=5).close()  # a request measured
            missing = wanted - exported(metrics_port)
            time.sleep(0.5)
        assert not missing, f"queried by the dashboard, not in /metrics: {sorted(missing)}"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
