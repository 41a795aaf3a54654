"""Offline checks of the deployment files: no cluster, no Docker engine, no project code.

- deploy/k8s (and deploy/k8s/infra): every manifest validates against the Kubernetes
  OpenAPI schemas bundled in `kubernetes-validate` (strict: unknown fields fail), the
  kustomizations list every manifest, and every platform Deployment has probes,
  requests/limits, a non-root security context and takes PPA_SECRET_KEY from a Secret.
- Routing: every path of the Ingress reaches a Deployment that runs an HTTP edge (`ppa api EDGE`), every edge
  Deployment receives some path, device uploads go to metering-api; compose's `edge` (nginx) routes the same
  paths to the same processes.
- docker-compose.yml: validates against the Compose Specification JSON schema (vendored
  in the `check-jsonschema` wheel), and its processes match the platform's process list.
- Dockerfile / .dockerignore: the few facts the compose file and the manifests rely on.
"""

from __future__ import annotations

import importlib
import importlib.resources
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml


def _require(module: str, package: str) -> Any:
    """Import a test-only dependency: a skip with the reason locally, a failure under CI=true."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PyPI package {package!r} is not installed (a dev dependency)", allow_module_level=True)


jsonschema = _require("jsonschema", "jsonschema")
kubernetes_validate = _require("kubernetes_validate", "kubernetes-validate")
_require("check_jsonschema", "check-jsonschema")  # ships the Compose Specification schema

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
INFRA = K8S / "infra"
MANAGED = ROOT / "deploy" / "k8s-managed"  # overlay for managed Kafka / MongoDB Atlas
COMPOSE = ROOT / "docker-compose.yml"
EDGE_CONF = ROOT / "deploy" / "compose" / "edge.conf"  # compose's router, mounted into the `edge` nginx
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# The platform's processes: (name, args after the `ppa` entrypoint, health port). Two HTTP edges (`ppa api`):
# the gateway hosts the pages and every service's commands, metering's takes the device uploads.
API_EDGES = ("gateway", "metering")
WORKER_SERVICES = ("identity", "linking", "metering", "billing", "notify")
PROCESSES: dict[str, tuple[list[str], int]] = {
    **{f"{s}-api": (["api", s, "--host", "0.0.0.0", "--port", "8000"], 8000) for s in API_EDGES},
    **{f"{s}-worker": (["worker", s, "--health-port", "8081"], 8081) for s in WORKER_SERVICES},
}
APP_ENV_KEYS = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "MONGODB_URI",
    "PPA_SECRET_KEY",
    "PPA_ENV",
    "PPA_PUBLIC_URL",
    "SMTP_HOST",
    "SMTP_PORT",
    "LOG_LEVEL",
}
IMAGE = "ppa-platform:latest"
METRICS_PORT = 9464  # the APIs' /metrics listener (PPA_METRICS_PORT), off the public port
SECRET_NAME, SECRET_KEY = "ppa-secrets", "PPA_SECRET_KEY"
NOT_RESOURCES = {"kustomization.yaml", "secret.example.yaml"}

# Kubernetes versions to validate against: an older still-common minor and the newest
# one the installed kubernetes-validate bundles.
K8S_VERSIONS = sorted({"1.30", kubernetes_validate.latest_version().rsplit(".", 1)[0]})


# ----------------------------------------------------------------------------- helpers


def load_docs(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc]


def kustomization(folder: Path) -> dict[str, Any]:
    return load_docs(folder / "kustomization.yaml")[0]


def resource_files(folder: Path) -> list[Path]:
    return [folder / name for name in kustomization(folder)["resources"]]


def manifests(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in resource_files(folder) for doc in load_docs(path)]


def of_kind(folder: Path, kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests(folder) if doc["kind"] == kind}


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return workload["spec"]["template"]["spec"]["containers"]


def port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError(f"container {container['name']} has no port named {port!r}")


def all_manifest_params() -> list[Any]:
    folders = [K8S] + ([INFRA] if (INFRA / "kustomization.yaml").exists() else [])
    params = []
    for folder in folders:
        for path in resource_files(folder):
            params.append(pytest.param(path, id=str(path.relative_to(ROOT))))
    params.append(pytest.param(K8S / "secret.example.yaml", id="deploy/k8s/secret.example.yaml"))
    params.append(pytest.param(MANAGED / "secret.example.yaml", id="deploy/k8s-managed/secret.example.yaml"))
    return params


def compose() -> dict[str, Any]:
    with COMPOSE.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)  # resolves the YAML anchors and `<<` merge keys


def app_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in doc["services"].items() if "build" in svc or svc.get("image") == IMAGE}


# ----------------------------------------------------------------------------- k8s: schema


def schema_problem(doc: dict[str, Any], version: str) -> str | None:
    """Why `doc` does not match the Kubernetes `version` OpenAPI schema (strict), or None."""
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path) or "(top)"
        return f"{name} at {where}: {exc.message}"
    except kubernetes_validate.SchemaNotFoundError as exc:
        return f"{name}: {exc.message}"
    return None


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", all_manifest_params())
def test_manifest_matches_kubernetes_openapi_schema(path: Path, version: str) -> None:
    docs = load_docs(path)
    assert docs, f"{path} holds no manifest"
    problems = [p for p in (schema_problem(doc, version) for doc in docs) if p]
    if problems:
        pytest.fail(f"{path.name} (Kubernetes {version}):\n" + "\n".join(problems), pytrace=False)


# ----------------------------------------------------------------------------- k8s: structure


@pytest.mark.parametrize("folder", [K8S, INFRA], ids=["base", "infra"])
def test_kustomization_lists_every_manifest(folder: Path) -> None:
    if not (folder / "kustomization.yaml").exists():
        pytest.skip(f"no kustomization in {folder.relative_to(ROOT)}")
    listed = kustomization(folder)["resources"]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    for name in listed:
        assert (folder / name).is_file(), f"{name} is listed but missing"
    on_disk = {p.name for p in folder.iterdir() if p.suffix in {".yaml", ".yml"}} - NOT_RESOURCES
    assert set(listed) == on_disk, (
        f"not listed: {sorted(on_disk - set(listed))}; listed but not a manifest here: {sorted(set(listed) - on_disk)}"
    )
    assert "secret.example.yaml" not in listed


def test_no_secret_is_committed_to_the_kustomization() -> None:
    for folder in (K8S, INFRA):
        if (folder / "kustomization.yaml").exists():
            kinds = {doc["kind"] for _, doc in manifests(folder)}
            assert "Secret" not in kinds, f"{folder.relative_to(ROOT)} applies a Secret"
            assert "secretGenerator" not in kustomization(folder)


def test_kustomization_sets_namespace_and_image() -> None:
    k = kustomization(K8S)
    assert k["namespace"] == "ppa"
    namespaces = of_kind(K8S, "Namespace")
    assert set(namespaces) == {"ppa"}
    images = {i["name"]: i for i in k["images"]}
    assert "ppa-platform" in images
    assert images["ppa-platform"].get("newTag") == "latest"


def test_one_deployment_per_process_with_its_command() -> None:
    deployments = of_kind(K8S, "Deployment")
    assert set(deployments) == set(PROCESSES)
    for name, dep in deployments.items():
        (container,) = containers(dep)
        args, _ = PROCESSES[name]
        assert container["image"] == IMAGE, name
        assert "command" not in container, f"{name} must keep the image's `ppa` entrypoint"
        assert container["args"] == args, name
        selector = dep["spec"]["selector"]["matchLabels"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"{name}: selector does not match the pod labels"


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_deployment_probes_resources_secret_and_security(name: str) -> None:
    dep = of_kind(K8S, "Deployment")[name]
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    _, health_port = PROCESSES[name]

    # liveness (and the startup probe that holds it off) must not fail for a Kafka or MongoDB outage: restarting
    # cures nothing then; readiness does, so no traffic reaches a pod that cannot serve it
    for probe, path in (("startupProbe", "/livez"), ("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        assert probe in container, f"{name}: no {probe}"
        http = container[probe]["httpGet"]
        assert http["path"] == path, f"{name}: {probe} path"
        assert port_number(container, http["port"]) == health_port, f"{name}: {probe} port"

    resources = container["resources"]
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources.get(section, {})), f"{name}: {section} needs cpu and memory"

    env = {e["name"]: e for e in container.get("env", [])}
    secret = env[SECRET_KEY]
    assert "value" not in secret, f"{name}: {SECRET_KEY} must not be a literal"
    assert secret["valueFrom"]["secretKeyRef"] == {"name": SECRET_NAME, "key": SECRET_KEY}
    config_refs = [src["configMapRef"]["name"] for src in container.get("envFrom", []) if "configMapRef" in src]
    assert config_refs == ["ppa-config"], f"{name}: envFrom must take ppa-config"

    assert pod["securityContext"]["runAsNonRoot"] is True, name
    assert pod["securityContext"].get("runAsUser", 0) != 0, name
    assert container["securityContext"]["allowPrivilegeEscalation"] is False, name

    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true", name
    # Prometheus reads an API's own metrics port, which its Service (port 8000 only, above) does not expose
    metrics_port = METRICS_PORT if name.endswith("-api") else health_port
    assert annotations["prometheus.io/port"] == str(metrics_port), name
    assert port_number(container, "metrics" if name.endswith("-api") else "health") == metrics_port, name
    if name.endswith("-api"):  # and the public port answers no one /metrics
        assert env["PPA_METRICS_PORT"]["value"] == str(METRICS_PORT), name
        assert env["PPA_METRICS_HOST"]["value"] == "0.0.0.0", name
    assert annotations["prometheus.io/path"] == "/metrics", name


def test_configmap_holds_the_settings_but_not_the_secret() -> None:
    data = of_kind(K8S, "ConfigMap")["ppa-config"]["data"]
    assert APP_ENV_KEYS - {SECRET_KEY} <= set(data)
    assert SECRET_KEY not in data
    assert data["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert data["MONGODB_URI"].startswith("mongodb://mongodb:27017")
    assert data["PPA_ENV"] == "prod"
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"


def test_secret_example_shape() -> None:
    (doc,) = load_docs(K8S / "secret.example.yaml")
    assert doc["kind"] == "Secret"
    assert doc["metadata"]["name"] == SECRET_NAME
    assert set(doc.get("stringData", doc.get("data", {}))) == {SECRET_KEY}


def test_the_secret_example_holds_no_key_a_process_would_start_with() -> None:
    from ppa_runtime.settings import Settings

    (doc,) = load_docs(K8S / "secret.example.yaml")
    with pytest.raises(ValueError, match="PPA_SECRET_KEY"):
        Settings(secret_key=doc["stringData"][SECRET_KEY], kafka_bootstrap_servers="kafka:9092",
                 mongodb_uri="mongodb://mongodb:27017")


def test_every_api_has_a_service_selecting_it() -> None:
    services = of_kind(K8S, "Service")
    deployments = of_kind(K8S, "Deployment")
    assert set(services) == {f"{s}-api" for s in API_EDGES}
    for name, svc in services.items():
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items(), name
        (container,) = containers(deployments[name])
        for port in svc["spec"]["ports"]:
            assert port_number(container, port["targetPort"]) == 8000, name


DEVICES = "/api/v1/devices"


def ingress_routes(docs: list[dict[str, Any]]) -> dict[str, str]:
    """Path prefix -> the Deployment its Service sends it to, checking each hop on the way."""
    (ingress,) = [d for d in docs if d["kind"] == "Ingress"]
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    routes: dict[str, str] = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["pathType"] == "Prefix", path
            backend = path["backend"]["service"]
            assert backend["name"] in services, f"the Ingress points at unknown Service {backend['name']}"
            svc = services[backend["name"]]
            port_names = {p["name"] for p in svc["spec"]["ports"]}
            assert backend["port"].get("name") in port_names or backend["port"].get("number")
            selected = [name for name, dep in deployments.items()
                        if svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()]
            assert len(selected) == 1, f"Service {backend['name']} selects {selected}: one Deployment expected"
            routes[path["path"]] = selected[0]
    return routes


def assert_routing(docs: list[dict[str, Any]]) -> None:
    """Every path reaches an HTTP edge; every edge gets some path; devices go to metering's edge."""
    routes = ingress_routes(docs)
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    edges = {name for name, dep in deployments.items() if containers(dep)[0]["args"][0] == "api"}
    assert edges == {f"{e}-api" for e in API_EDGES}
    assert set(routes.values()) <= edges, f"a path goes to a process that is no HTTP edge: {routes}"
    assert edges <= set(routes.values()), f"an edge Deployment receives no path: {sorted(edges - set(routes.values()))}"
    assert routes == {DEVICES: "metering-api", "/": "gateway-api"}


def test_ingress_sends_every_path_to_an_edge_and_devices_to_metering() -> None:
    assert_routing([doc for _, doc in manifests(K8S)])


def test_metering_edge_scales_by_its_autoscaler() -> None:
    (hpa,) = of_kind(K8S, "HorizontalPodAutoscaler").values()
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "metering-api")
    dep = of_kind(K8S, "Deployment")["metering-api"]
    assert "replicas" not in dep["spec"], "the autoscaler owns metering-api's replicas (an apply would reset them)"
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in containers(dep)[0]["resources"]["requests"], "CPU utilization is a share of the request"


def test_infra_workloads_have_probes_and_resources() -> None:
    if not (INFRA / "kustomization.yaml").exists():
        pytest.skip("no optional infra kustomization")
    workloads = [doc for _, doc in manifests(INFRA) if doc["kind"] in {"Deployment", "StatefulSet"}]
    names = {w["metadata"]["name"] for w in workloads}
    assert {"kafka", "mongodb"} <= names
    services = of_kind(INFRA, "Service")
    assert {"kafka", "mongodb"} <= set(services), "the base's ConfigMap expects Services kafka and mongodb"
    for workload in workloads:
        for container in containers(workload):
            who = f"{workload['metadata']['name']}/{container['name']}"
            assert "readinessProbe" in container and "livenessProbe" in container, who
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), who
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), who
        assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def kustomize_command() -> list[str]:
    """kustomize, or the one built into kubectl; a skip when neither is around."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    pytest.skip("neither kustomize nor kubectl on PATH")


def test_kustomize_build_renders() -> None:
    """Renders the kustomizations when a kustomize binary is around (kubectl has one built in)."""
    cmd = kustomize_command()
    for folder in (K8S, INFRA):
        if not (folder / "kustomization.yaml").exists():
            continue
        out = subprocess.run([*cmd, str(folder)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        rendered = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
        assert len(rendered) == len(manifests(folder))
        for doc in rendered:
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") == "ppa", doc["metadata"]["name"]
            assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ppa"
            assert schema_problem(doc, K8S_VERSIONS[-1]) is None, schema_problem(doc, K8S_VERSIONS[-1])
        if folder == K8S:
            assert_routing(rendered)


def test_managed_overlay_takes_every_secret_from_the_mounted_connections_secret() -> None:
    data = load_docs(MANAGED / "configmap.yaml")[0]["data"]
    ops = load_docs(MANAGED / "connections-volume.yaml")[0]
    volume = next(op["value"] for op in ops if op["path"] == "/spec/template/spec/volumes/-")
    mount = next(op["value"] for op in ops if op["path"] == "/spec/template/spec/containers/0/volumeMounts/-")
    (secret,) = load_docs(MANAGED / "secret.example.yaml")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"] == "ppa-connections"
    assert mount["name"] == volume["name"] and mount["readOnly"] is True
    files = {key: path for key, path in data.items() if key.endswith("_FILE")}
    assert set(files) == {"KAFKA_SASL_PASSWORD_FILE", "MONGODB_URI_FILE"}
    for path in files.values():
        folder, _, name = path.rpartition("/")
        assert folder == mount["mountPath"] and name in secret["stringData"], path
    # the platform refuses MONGODB_URI and MONGODB_URI_FILE together: the patch removes the base's URI
    assert "MONGODB_URI" in data and data["MONGODB_URI"] is None
    assert "KAFKA_SASL_PASSWORD" not in data, "a password in a ConfigMap"
    assert data["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and data["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert "secret.example.yaml" not in json.dumps(kustomization(MANAGED))


def test_managed_overlay_renders_with_the_secret_mounted_everywhere() -> None:
    cmd = kustomize_command()
    out = subprocess.run([*cmd, str(MANAGED)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rendered = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    assert len(rendered) == len(manifests(K8S))
    config = next(doc for doc in rendered if doc["kind"] == "ConfigMap")["data"]
    assert "MONGODB_URI" not in config and config["MONGODB_URI_FILE"].startswith("/var/run/secrets/ppa/")
    for doc in rendered:
        assert schema_problem(doc, K8S_VERSIONS[-1]) is None, schema_problem(doc, K8S_VERSIONS[-1])
        if doc["kind"] == "Deployment":
            spec = doc["spec"]["template"]["spec"]
            assert {"tmp", "connections"} <= {v["name"] for v in spec["volumes"]}, doc["metadata"]["name"]
            mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
            assert "/var/run/secrets/ppa" in mounts, doc["metadata"]["name"]


# ----------------------------------------------------------------------------- compose


def compose_schema() -> dict[str, Any]:
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    return json.loads(resource.read_text(encoding="utf-8"))


def test_compose_matches_compose_specification_schema() -> None:
    schema = compose_schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    errors = sorted(validator_cls(schema).iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_compose_shares_one_build_through_an_extension() -> None:
    doc = compose()
    extensions = {k: v for k, v in doc.items() if k.startswith("x-")}
    assert any(isinstance(v, dict) and "build" in v for v in extensions.values()), "no x- extension with the build"
    services = app_services(doc)
    builds = [svc.get("build") for svc in services.values()]
    assert all(b == builds[0] for b in builds), "every app service must use the same build"
    assert builds[0] == {"context": ".", "dockerfile": "Dockerfile"}
    assert all(svc.get("image") == IMAGE for svc in services.values())


def test_compose_runs_every_process_with_its_command() -> None:
    services = app_services(compose())
    assert set(services) == set(PROCESSES)
    for name, svc in services.items():
        assert svc["command"] == PROCESSES[name][0], name
        assert "entrypoint" not in svc, f"{name} must keep the image's `ppa` entrypoint"


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_compose_app_service_health_env_and_dependencies(name: str) -> None:
    doc = compose()
    svc = app_services(doc)[name]
    _, port = PROCESSES[name]

    test = svc["healthcheck"]["test"]
    text = " ".join(test) if isinstance(test, list) else test
    assert f":{port}/readyz" in text, f"{name}: healthcheck must hit /readyz on {port}"
    assert "curl" not in text and "wget" not in text, f"{name}: the slim image has neither curl nor wget"
    assert "python" in text

    env = svc["environment"]
    assert isinstance(env, dict)
    assert APP_ENV_KEYS <= set(env), f"{name}: missing {sorted(APP_ENV_KEYS - set(env))}"
    assert re.fullmatch(r"\$\{PPA_SECRET_KEY:\?[^}]*\}", env[SECRET_KEY]), f"{name}: {SECRET_KEY} needs ${{..:?..}}"
    assert env["PPA_ENV"] == "prod"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["MONGODB_URI"].startswith("mongodb://mongodb:27017")

    depends = svc["depends_on"]
    assert isinstance(depends, dict)
    assert {"kafka", "mongodb"} <= set(depends)
    for dep, spec in depends.items():
        assert spec["condition"] == "service_healthy", f"{name} -> {dep}"
        assert "healthcheck" in doc["services"][dep], f"{dep} has no healthcheck to wait on"


def test_compose_infrastructure() -> None:
    doc = compose()
    services = doc["services"]
    kafka, mongo = services["kafka"], services["mongodb"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"]), kafka["image"]
    env = kafka["environment"]
    for key in (
        "KAFKA_NODE_ID",
        "KAFKA_PROCESS_ROLES",
        "KAFKA_LISTENERS",
        "KAFKA_ADVERTISED_LISTENERS",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
    ):
        assert key in env, key
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "kafka-broker-api-versions.sh" in str(kafka["healthcheck"]["test"])
    assert re.fullmatch(r"mongo:[78](\.\d+)*", mongo["image"]), mongo["image"]
    assert "mongosh" in str(mongo["healthcheck"]["test"])
    assert any(str(v).endswith(":/data/db") for v in mongo["volumes"])
    named = {str(v).split(":")[0] for s in (kafka, mongo) for v in s.get("volumes", [])}
    assert named <= set(doc.get("volumes", {})), "named volumes must be declared"
    edge_ports = [str(p) for p in services["edge"]["ports"]]
    published_on_8000 = re.compile(r"(?:[\d.]+:)?(?:8000|\$\{\w+:-8000\}):8000")
    assert any(published_on_8000.fullmatch(p) for p in edge_ports), f"edge must publish 8000: {edge_ports}"


def edge_routes() -> dict[str, str]:
    """compose's router: location prefix (without its closing slash) -> the compose service it proxies to."""
    text = re.sub(r"#[^\n]*", "", EDGE_CONF.read_text(encoding="utf-8"))
    routes = {}
    for prefix, body in re.findall(r"location\s+(/\S*)\s*\{([^}]*)\}", text):
        (target,) = re.findall(r"proxy_pass\s+http://([a-z-]+):8000\$request_uri;", body)
        routes[prefix.rstrip("/") or "/"] = target
    return routes


def test_compose_edge_routes_as_the_ingress_does() -> None:
    doc = compose()
    edge = doc["services"]["edge"]
    assert any(str(v).split(":")[0] == "./" + str(EDGE_CONF.relative_to(ROOT)) for v in edge["volumes"])
    k8s = ingress_routes([d for _, d in manifests(K8S)])
    assert edge_routes() == k8s, "compose's edge and the k8s Ingress send paths to different processes"
    assert set(edge["depends_on"]) == set(k8s.values())
    # the one way in: no platform process publishes a port of its own
    assert [name for name, svc in app_services(doc).items() if svc.get("ports")] == []
    for name in k8s.values():  # the APIs trust X-Forwarded-For, which the edge replaces rather than appends to
        assert app_services(doc)[name]["environment"]["FORWARDED_ALLOW_IPS"] == "*", name
    assert re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$remote_addr;", EDGE_CONF.read_text(encoding="utf-8"))


def test_compose_and_k8s_run_the_same_processes() -> None:
    commands = {name: svc["command"] for name, svc in app_services(compose()).items()}
    args = {name: containers(dep)[0]["args"] for name, dep in of_kind(K8S, "Deployment").items()}
    assert commands == args


# ----------------------------------------------------------------------------- image


def test_dockerfile_builds_the_one_image() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    froms = [line for line in instructions if line.upper().startswith("FROM ")]
    assert froms and froms[-1].split()[1].startswith("python:3.11-slim"), froms
    assert "pip install uv" in text
    assert re.search(r"uv sync[^\n]*--frozen[^\n]*--no-dev", text)
    for part in ("pyproject.toml", "uv.lock", "libs/", "services/", "src/"):
        assert re.search(rf"^COPY .*{re.escape(part)}", text, re.M), f"Dockerfile does not copy {part}"
    assert re.search(r'^ENV PATH="?/app/\.venv/bin', text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "the image must run as a non-root user"
    assert users[-1].split(":")[0].isdigit(), "use a numeric USER so runAsNonRoot can verify it"
    entrypoints = re.findall(r"^ENTRYPOINT\s+(.+)$", text, re.M)
    assert entrypoints and json.loads(entrypoints[-1]) == ["ppa"]


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = {
        line.strip().lstrip("/").removeprefix("**/").rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".git", ".venv", ".ppa", "__pycache__"):
        assert needed in patterns, needed
    for kept in ("src", "libs", "services", "pyproject.toml", "uv.lock"):
        assert kept not in patterns, f"{kept} is needed in the build context"
