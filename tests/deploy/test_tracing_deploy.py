"""Traces are on in compose and Kubernetes: every process exports OTLP to a collector that is part of the stack, and
both run the collector with the same configuration."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR_CONFIG = ROOT / "deploy" / "observability" / "otel-collector.yaml"


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def test_compose_processes_export_to_its_collector() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    collector = services["otel-collector"]
    assert "./deploy/observability/otel-collector.yaml:/etc/otelcol/config.yaml:ro" in collector["volumes"]
    for name, service in services.items():
        if "ppa-platform" not in str(service.get("image", "")):
            continue
        env = service["environment"]
        assert env["OTEL_TRACES_EXPORTER"].endswith(":-otlp}"), name
        endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"].split(":-", 1)[1].rstrip("}")
        assert urlsplit(endpoint).hostname == "otel-collector" and urlsplit(endpoint).port == 4318, name
        assert "OTEL_SERVICE_NAME" not in env, f"{name}: each process names itself"


def test_kubernetes_processes_export_to_the_infra_collector_configured_as_compose_runs_it() -> None:
    config = next(d for d in documents(ROOT / "deploy" / "k8s" / "configmap.yaml") if d["kind"] == "ConfigMap")
    data = config["data"]
    assert data["OTEL_TRACES_EXPORTER"] == "otlp"
    endpoint = urlsplit(data["OTEL_EXPORTER_OTLP_ENDPOINT"])
    infra = {(d["kind"], d["metadata"]["name"]): d for d in documents(ROOT / "deploy" / "k8s" / "infra" /
                                                                       "otel-collector.yaml")}
    service = infra[("Service", "otel-collector")]
    assert endpoint.hostname == "otel-collector"
    assert endpoint.port in {p["port"] for p in service["spec"]["ports"]}
    k8s_config = yaml.safe_load(infra[("ConfigMap", "otel-collector")]["data"]["config.yaml"])
    assert k8s_config == yaml.safe_load(COLLECTOR_CONFIG.read_text(encoding="utf-8"))
    receivers = k8s_config["receivers"]["otlp"]["protocols"]
    assert receivers["http"]["endpoint"].endswith(f":{endpoint.port}")
    assert k8s_config["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]
    (container,) = infra[("Deployment", "otel-collector")]["spec"]["template"]["spec"]["containers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert container["image"] == compose["services"]["otel-collector"]["image"]
