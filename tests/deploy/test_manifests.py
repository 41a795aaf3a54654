"""Offline checks of the deployment files: no cluster, no Docker engine, no project code.

- deploy/k8s (and deploy/k8s/infra): every manifest validates against the Kubernetes
  OpenAPI schemas bundled in `kubernetes-validate` (strict: unknown fields fail), the
  kustomizations list every manifest, and every platform Deployment has probes,
  requests/limits, a non-root security context and takes PPA_SECRET_KEY from a Secret.
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
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# The platform's processes: (name, args after the `ppa` entrypoint, health port).
API_SERVICES = ("identity", "linking", "metering", "billing", "notify", "gateway")
WORKER_SERVICES = ("identity", "linking", "metering", "billing", "notify")
PROCESSES: dict[str, tuple[list[str], int]] = {
    **{f"{s}-api": (["api", s, "--host", "0.0.0.0", "--port", "8000"], 8000) for s in API_SERVICES},
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
    assert annotations["prometheus.io/port"] == str(health_port), name
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


def test_every_api_has_a_service_selecting_it() -> None:
    services = of_kind(K8S, "Service")
    deployments = of_kind(K8S, "Deployment")
    assert set(services) == {f"{s}-api" for s in API_SERVICES}
    for name, svc in services.items():
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items(), name
        (container,) = containers(deployments[name])
        for port in svc["spec"]["ports"]:
            assert port_number(container, port["targetPort"]) == 8000, name


def test_ingress_routes_devices_to_metering_and_the_rest_to_the_gateway() -> None:
    (ingress,) = of_kind(K8S, "Ingress").values()
    services = of_kind(K8S, "Service")
    routes = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] in services, f"ingress points at unknown Service {backend['name']}"
            port_names = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
            assert backend["port"].get("name") in port_names or backend["port"].get("number")
            routes[path["path"]] = (path["pathType"], backend["name"])
    assert routes["/api/v1/devices"] == ("Prefix", "metering-api")
    assert routes["/"] == ("Prefix", "gateway-api")


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


def test_kustomize_build_renders() -> None:
    """Renders the kustomizations when a kustomize binary is around (kubectl has one built in)."""
    if shutil.which("kustomize"):
        cmd = ["kustomize", "build"]
    elif shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize"]
    else:
        pytest.skip("neither kustomize nor kubectl on PATH")
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
    gateway_ports = [str(p) for p in services["gateway-api"]["ports"]]
    published_on_8000 = re.compile(r"(?:[\d.]+:)?(?:8000|\$\{\w+:-8000\}):8000")
    assert any(published_on_8000.fullmatch(p) for p in gateway_ports), f"gateway-api must publish 8000: {gateway_ports}"


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
