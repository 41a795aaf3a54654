"""The HTTP edges serve what the deployment sends them: every route of the platform (what `ppa up` serves),
looked up in deploy/k8s/ingress.yaml as a Prefix path is, lands on a Deployment whose `ppa api EDGE` app has
that route. Device uploads land on the metering edge, which hosts metering alone."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml
from support import make_settings

from ppa.platform import EDGES, SERVICES, build_host
from ppa_gateway.app import create_app
from ppa_runtime.runtime import Runtime

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
DEVICE_UPLOAD = ("POST", "/api/v1/devices/{serial_number}/readings")


def ingress_paths() -> dict[str, str]:
    """Prefix -> the Service it is sent to (each edge's Service is named as its Deployment)."""
    (ingress,) = yaml.safe_load_all((K8S / "ingress.yaml").read_text(encoding="utf-8"))
    return {p["path"]: p["backend"]["service"]["name"]
            for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}


def edge_of(deployment: str) -> str:
    """The edge a Deployment runs: its args are `api EDGE ...`."""
    for doc in yaml.safe_load_all((K8S / f"{deployment}.yaml").read_text(encoding="utf-8")):
        if doc["kind"] == "Deployment":
            args = doc["spec"]["template"]["spec"]["containers"][0]["args"]
            assert args[0] == "api", f"{deployment} is sent requests but runs `ppa {' '.join(args)}`"
            return args[1]
    raise AssertionError(f"no Deployment in {deployment}.yaml")


def backend(path: str, paths: dict[str, str]) -> str:
    """Kubernetes Prefix matching: whole path elements, the longest matching prefix wins."""
    elements = path.strip("/").split("/")

    def matches(prefix: str) -> bool:
        wanted = [e for e in prefix.strip("/").split("/") if e]
        return elements[:len(wanted)] == wanted

    return paths[max((p for p in paths if matches(p)), key=lambda p: len(p.strip("/")), default="")]


def operations(app) -> set[tuple[str, str]]:
    """The JSON API operations an app serves, from its OpenAPI document (the pages are not in it)."""
    return {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}


async def test_every_route_reaches_an_edge_that_serves_it(tmp_path):
    runtime = await Runtime.open(make_settings("embedded", tmp_path))
    try:
        apps = {edge: create_app(build_host(runtime, services, workers=False)) for edge, services in EDGES.items()}
        platform = operations(create_app(build_host(runtime, list(SERVICES), workers=False)))
        assert DEVICE_UPLOAD in platform, "the device upload has moved: update DEVICE_UPLOAD"
        paths = ingress_paths()
        unserved = sorted((method, path, edge_of(backend(path, paths))) for method, path in platform
                          if (method, path) not in operations(apps[edge_of(backend(path, paths))]))
        assert unserved == [], "the Ingress sends these routes to an edge that does not have them"
        assert {edge_of(d) for d in paths.values()} == set(EDGES), "an edge that receives no path"

        assert edge_of(backend(DEVICE_UPLOAD[1], paths)) == "metering"
        assert EDGES["metering"] == ["metering"], "the device edge answers from metering's own stores"
        assert operations(apps["metering"]) < platform
        # the pages and the operators' dashboard: sent to the gateway, which has them (the metering edge has not)
        for page in ("/agency/login", "/mypage/login", "/ops/login", "/ops/health"):
            assert edge_of(backend(page, paths)) == "gateway", page
            for edge, app in apps.items():
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as c:
                    found = (await c.get(page)).status_code != 404
                assert found == (edge == "gateway"), (edge, page)
    finally:
        await runtime.close()
