"""Compose's edge as deployed: a real nginx with deploy/compose/edge.conf in front of real `ppa api gateway` and
`ppa api metering` processes. Device uploads reach the metering edge (a full batch passes the edge), every other
path the gateway, and a client cannot choose the address the login throttle counts."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EDGE_CONF = ROOT / "deploy" / "compose" / "edge.conf"
PPA = str(Path(sys.executable).parent / "ppa")
DEVICE_ROUTE = 'route="/api/v1/devices/{serial_number}/readings"'
CUSTOMERS_ROUTE = 'route="/api/v1/customers"'


def nginx() -> str:
    found = os.environ.get("PPA_NGINX") or shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found:
        return found
    reason = "no nginx: `bash .ci/nginx.sh DIR` unpacks Debian's and prints PPA_NGINX"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200: {log.read_text()[-3000:]}")


def edge_config(folder: Path, listen: int, gateway: int, metering: int) -> Path:
    """edge.conf as compose mounts it, its container names and port swapped for these loopback ports."""
    text = EDGE_CONF.read_text(encoding="utf-8")
    for old, new in (("listen 8000;", f"listen 127.0.0.1:{listen};"), ("gateway-api:8000", f"127.0.0.1:{gateway}"),
                     ("metering-api:8000", f"127.0.0.1:{metering}")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (folder / "edge.conf").write_text(text, encoding="utf-8")
    main = folder / "nginx.conf"
    temp = " ".join(f"{kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                        "scgi"))
    main.write_text(f"daemon off; master_process off; pid {folder / 'nginx.pid'}; error_log {folder / 'error.log'};\n"
                    f"events {{}}\nhttp {{ access_log off; {temp} include {folder / 'edge.conf'}; }}\n",
                    encoding="utf-8")
    return main


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    binary = nginx()
    folder = tmp_path_factory.mktemp("edge")
    compose_env = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    data = folder / "data"  # made by the first `ppa api`, as `ppa up` makes it
    ports = {"edge": free_port(), "gateway": free_port(), "metering": free_port(), "gateway-metrics": free_port(),
             "metering-metrics": free_port()}
    log = folder / "processes.log"
    own = ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "MONGODB_URI_FILE")  # the embedded runtime: no servers
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name in ("gateway", "metering"):
            # the proxy trust the compose file gives the APIs behind the edge
            trust = compose_env[f"{name}-api"]["environment"]["FORWARDED_ALLOW_IPS"]
            # and its metrics listener, on a port of its own here (compose gives each container 9464)
            assert compose_env[f"{name}-api"]["environment"]["PPA_METRICS_PORT"] == "9464"
            env = {**{k: v for k, v in os.environ.items() if k not in own}, "PPA_DATA_DIR": str(data),
                   "FORWARDED_ALLOW_IPS": trust, "PPA_METRICS_PORT": str(ports[f"{name}-metrics"])}
            procs[name] = subprocess.Popen([PPA, "api", name, "--port", str(ports[name])], env=env,
                                           stdout=log.open("ab"), stderr=subprocess.STDOUT)
        for name in ("gateway", "metering"):
            wait_healthy(f"http://127.0.0.1:{ports[name]}/healthz", procs[name], log)
        config = edge_config(folder, ports["edge"], ports["gateway"], ports["metering"])
        checked = subprocess.run([binary, "-t", "-p", str(folder), "-c", str(config)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        procs["edge"] = subprocess.Popen([binary, "-p", str(folder), "-c", str(config)], stdout=log.open("ab"),
                                         stderr=subprocess.STDOUT)
        wait_healthy(f"http://127.0.0.1:{ports['edge']}/healthz", procs["edge"], log)
        yield {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def count(metrics: str, route: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("ppa_http_request_duration_seconds_count{") and route in line)


def test_device_uploads_reach_the_metering_edge_and_the_rest_the_gateway(edge):
    with httpx.Client(base_url=edge["edge"], timeout=30) as client:
        health = client.get("/healthz").json()
        assert set(health["services"]) == {"identity", "linking", "metering", "billing", "notify"}

        readings = [{"channel": "pv_generation", "at": f"2026-01-01T{i // 60 % 24:02d}:{i % 60:02d}:00+09:00",
                     "kwh": f"{i}.125", "register_max": "99999.999"} for i in range(10_000)]
        body = httpx.Request("POST", "/", json={"readings": readings}).read()
        assert len(body) > 1_000_000, "a full batch is more than nginx takes unless told"
        upload = client.post("/api/v1/devices/SN-NOT-REGISTERED/readings", content=body,
                             headers={"Authorization": "Bearer wrong", "Content-Type": "application/json"})
        assert upload.status_code == 401, upload.text
        assert upload.headers["content-type"] == "application/problem+json"
        customers = client.get("/api/v1/customers")
        assert customers.status_code == 401 and customers.headers["content-type"] == "application/problem+json"
        page = client.get("/agency/login")
        assert page.status_code == 200 and "ログイン" in page.text

        assert client.get("/metrics").status_code == 404  # the public entry has no metrics

    metering = httpx.get(f"{edge['metering-metrics']}/metrics").text
    gateway = httpx.get(f"{edge['gateway-metrics']}/metrics").text
    assert (count(metering, DEVICE_ROUTE), count(gateway, DEVICE_ROUTE)) == (1, 0)
    assert (count(metering, CUSTOMERS_ROUTE), count(gateway, CUSTOMERS_ROUTE)) == (0, 1)


def test_a_client_cannot_choose_the_address_the_login_throttle_counts(edge):
    with httpx.Client(base_url=edge["edge"], timeout=30) as client:
        def attempt(i: int) -> httpx.Response:
            # another account each time (the per-account limit stays out of it), another claimed address each time
            return client.post("/api/v1/auth/token", data={"username": f"nobody{i}@example.jp", "password": "wrong"},
                               headers={"X-Forwarded-For": f"203.0.113.{i}"})

        assert [attempt(i).status_code for i in range(20)] == [401] * 20
        locked = attempt(20)
        assert locked.status_code == 429, "the claimed addresses were counted: the edge passed them on"
        assert locked.headers["content-type"] == "application/problem+json"
