"""deploy/observability with Prometheus's own promtool: the config and rules pass `promtool check`, every alert's
unit tests (rules.test.yml) pass, and the series a process exports around its first dead letter or failed mail,
fed to promtool as they were scraped, fire the alert."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ppa_contracts import Envelope
from ppa_contracts.notify import EmailSent
from ppa_contracts.topics import NOTIFY_EMAIL
from ppa_runtime.consumer import Consumer, ConsumerSpec

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"


@pytest.fixture(scope="module")
def promtool() -> str:
    """PPA_PROMTOOL (.ci/run builds it first), else built here by .ci/promtool.sh (needs the go tool)."""
    given = os.environ.get("PPA_PROMTOOL")
    if given:
        return given
    try:
        built = subprocess.run(["bash", str(ROOT / ".ci" / "promtool.sh")], capture_output=True, text=True,
                               timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        built = None
        reason = repr(exc)
    else:
        reason = built.stderr[-2000:]
    if built is not None and built.returncode == 0:
        return built.stdout.strip().splitlines()[-1]
    if os.environ.get("CI") == "true":
        pytest.fail(f"no promtool: {reason}")
    pytest.skip(f"no promtool (.ci/promtool.sh builds it with the go tool): {reason}")


def run(promtool: str, *args: str, cwd: Path = OBS) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_prometheus_config_and_rules_pass_promtool_check(promtool):
    rules = run(promtool, "check", "rules", "rules.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 5 rules found" in rules.stdout + rules.stderr
    config = run(promtool, "check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_alert_has_unit_tests_that_pass(promtool):
    alerts = {r["alert"] for g in yaml.safe_load((OBS / "rules.yml").read_text())["groups"] for r in g["rules"]}
    tested = yaml.safe_load((OBS / "rules.test.yml").read_text())["tests"]
    checked = [c for t in tested for c in t["alert_rule_test"]]
    for alert in alerts:  # each fires in some case and stays silent in another
        assert any(c["alertname"] == alert and c["exp_alerts"] for c in checked), alert
        assert any(c["alertname"] == alert and not c["exp_alerts"] for c in checked), alert
    result = run(promtool, "test", "rules", "rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def scraped(name: str, labels: dict[str, str]) -> float | None:
    """The value of one series as the process's /metrics text has it (None: no such series)."""
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def fires(promtool: str, tmp_path: Path, series: str, values: list[float], alert: str,
          labels: dict[str, str], annotations: dict[str, str]) -> subprocess.CompletedProcess:
    """promtool's verdict on `alert` firing with `labels` and `annotations` at the last of the scraped `values`
    (one a minute)."""
    case = {
        "rule_files": [str(OBS / "rules.yml")],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": series, "values": " ".join(f"{v:g}" for v in values)}],
            "alert_rule_test": [{"eval_time": f"{len(values) - 1}m", "alertname": alert,
                                 "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations}]}],
        }],
    }
    path = tmp_path / "scraped.test.yml"
    path.write_text(yaml.safe_dump(case))
    return run(promtool, "test", "rules", str(path), cwd=tmp_path)


async def test_the_first_dead_letter_of_a_group_fires_the_alert(runtime, promtool, tmp_path):
    """A consumer group's dead-letter series is at 0 once it subscribes, so its first dead letter is an increase."""
    group = f"alert-{uuid.uuid4().hex[:8]}"
    labels = {"group": group, "topic": NOTIFY_EMAIL}

    async def refuse(payload, env):
        raise RuntimeError("read model unavailable")

    env = Envelope.wrap(EmailSent(message_id="m1", template="agency_registered", recipient="a@example.jp",
                                  attempts=1), subject="m1", correlation_id="c1")
    consumer = Consumer(ConsumerSpec(group, [NOTIFY_EMAIL], {env.type: refuse}), runtime.bus,
                        runtime.docstore("testsvc").collection("inbox"), max_attempts=2, backoff=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        while not consumer.running:
            await asyncio.sleep(0.02)
        before = scraped("ppa_dead_letters_total", labels)
        errors_before = scraped("ppa_handler_errors_total", {"group": group, "event_type": env.type})
        assert before == 0 and errors_before == 0, "born at 0 when the group subscribes"
        await runtime.bus.publish(NOTIFY_EMAIL, [env])
        for _ in range(600):
            if scraped("ppa_dead_letters_total", labels) == 1:
                break
            await asyncio.sleep(0.05)
        after = scraped("ppa_dead_letters_total", labels)
    finally:
        stop.set()
        await task
    assert after == 1
    series = f'ppa_dead_letters_total{{group="{group}",topic="{NOTIFY_EMAIL}"}}'
    expected = ({"severity": "warning", **labels},
                {"summary": f"Events dead-lettered by {group} on {NOTIFY_EMAIL}",
                 "description": "Inspect, replay or discard them at /ops/dead-letters."})
    result = fires(promtool, tmp_path, series, [before, before, after, after], "PpaDeadLetters", *expected)
    assert result.returncode == 0, result.stdout + result.stderr
    # the same samples without the 0 (a series born at its first dead letter) would not fire
    silent = fires(promtool, tmp_path, series, [after, after], "PpaDeadLetters", *expected)
    assert silent.returncode != 0 and "PpaDeadLetters" in silent.stdout + silent.stderr


def test_every_dashboard_query_is_promql_that_promtool_accepts(promtool, tmp_path):
    import json

    dashboard = json.loads((OBS / "grafana" / "ppa-dashboard.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert queries
    # Grafana fills in its variables before Prometheus sees a query: the dashboard's `service` matches all here
    rules = [{"record": f"ppa:dashboard_query_{i}", "expr": q.replace("$service", ".*")} for i, q in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(promtool, "check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout + result.stderr
