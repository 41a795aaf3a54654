"""deploy/observability: the Prometheus config and rules parse and scrape every process; the Grafana
dashboard is valid JSON whose queries name only metrics the platform exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from ppa_runtime import metrics

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
PROCESSES = [f"{s}-api:9464" for s in ("gateway", "metering")] + \
            [f"{s}-worker:8081" for s in ("identity", "linking", "metering", "billing", "notify")]


def exported_names() -> set[str]:
    names: set[str] = set()
    for value in vars(metrics).values():
        if hasattr(value, "_name") and hasattr(value, "_type"):
            base = value._name
            names |= {base, f"{base}_total", f"{base}_bucket", f"{base}_count", f"{base}_sum"}
    return names


def used_names(text: str) -> set[str]:
    return set(re.findall(r"\bppa_[a-z_]+\b", text)) - {"ppa_jp_service"}


def test_prometheus_config_scrapes_every_compose_process_and_k8s_pods():
    config = yaml.safe_load((OBS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for group in jobs["ppa-compose"]["static_configs"] for t in group["targets"]]
    assert sorted(targets) == sorted(PROCESSES)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    platform = {name for name, svc in compose["services"].items() if svc.get("image") == "ppa-platform:latest"}
    assert {t.split(":")[0] for t in targets} == platform, "scrape every platform process of the compose file"
    for api in ("gateway-api", "metering-api"):  # the APIs' metrics listener, which the edge does not route
        assert compose["services"][api]["environment"]["PPA_METRICS_PORT"] == "9464", api
        assert "9464" in compose["services"][api]["expose"], api
    k8s = jobs["ppa-kubernetes"]
    assert k8s["kubernetes_sd_configs"][0]["role"] == "pod"
    assert any(r.get("action") == "keep" for r in k8s["relabel_configs"])
    assert config["rule_files"] == ["rules.yml"]


def test_alert_rules_parse_and_use_exported_metrics():
    rules = yaml.safe_load((OBS / "rules.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert {"PpaConsumerLagGrowing", "PpaDeadLetters"} <= {a["alert"] for a in alerts}
    for alert in alerts:
        assert used_names(alert["expr"]) <= exported_names(), alert["alert"]


def test_grafana_dashboard_is_json_and_queries_exported_metrics():
    dashboard = json.loads((OBS / "grafana" / "ppa-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 30
    targets = [t for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs = " ".join(t["expr"] for t in targets)
    assert used_names(exprs) <= exported_names()
    # each of the metrics has a panel
    for name in ("ppa_http_request_duration_seconds_bucket", "ppa_events_published_total", "ppa_events_consumed_total",
                 "ppa_handler_errors_total", "ppa_consumer_lag", "ppa_emails_total", "ppa_readings_total",
                 "ppa_dead_letters_total"):
        assert name in exprs, name
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all({"h", "w", "x", "y"} <= set(p["gridPos"]) for p in dashboard["panels"])


def test_grafana_dashboard_declares_every_data_source_it_uses_and_no_other():
    text = (OBS / "grafana" / "ppa-dashboard.json").read_text()
    dashboard = json.loads(text)
    inputs = {i["name"] for i in dashboard.get("__inputs", [])}
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    used = set(re.findall(r"\$\{(\w+)\}", text))
    assert inputs <= used, f"declared, never used: {sorted(inputs - used)}"
    assert used <= inputs | variables, f"used, never declared: {sorted(used - inputs - variables)}"
    sources = [p["datasource"] for p in dashboard["panels"] if "datasource" in p]
    sources += [v["datasource"] for v in dashboard["templating"]["list"] if "datasource" in v]
    assert sources and all(s == {"type": "prometheus", "uid": "${datasource}"} for s in sources)
