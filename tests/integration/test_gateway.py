"""The gateway skeleton: health, metrics, OpenAPI, request ids, problem+json, Japanese layout."""

from __future__ import annotations

import httpx
import pytest

from ppa.platform import build_host
from ppa_gateway.app import create_app
from ppa_runtime.metrics_http import metrics_app
from ops_helpers import sign_in_operator


@pytest.fixture
async def client(runtime):
    host = build_host(runtime)
    app = create_app(host)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        c.host = host
        yield c
    await host.stop()


async def test_healthz_is_503_until_every_service_is_ready(client):
    before = await client.get("/healthz")
    assert before.status_code == 503
    await client.host.start()
    for _ in range(100):
        after = await client.get("/healthz")
        if after.status_code == 200:
            break
        import asyncio

        await asyncio.sleep(0.1)
    assert after.status_code == 200
    assert set(after.json()["services"]) == {"identity", "linking", "metering", "billing", "notify"}


async def test_liveness_and_readiness_are_apart(client, runtime_kind):
    assert (await client.get("/livez")).json() == {"status": "alive"}  # alive before it is ready
    starting = await client.get("/readyz")
    assert starting.status_code == 503 and starting.headers["content-type"] == "application/problem+json"
    assert starting.json()["detail"] == "起動中です。" and starting.json()["down"] == []
    assert int(starting.headers["retry-after"]) > 0
    await client.host.start()
    for _ in range(100):
        ready = await client.get("/readyz")
        if ready.status_code == 200:
            break
        import asyncio

        await asyncio.sleep(0.1)
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    dependencies = ready.json()["dependencies"]
    if runtime_kind == "distributed":
        assert {name: d["up"] for name, d in dependencies.items()} == {"kafka": True, "mongodb": True}
    else:  # SQLite files of this process: nothing outside to wait for
        assert dependencies == {}
    assert (await client.get("/healthz")).json() == ready.json()
    assert (await client.get("/livez")).status_code == 200


async def test_request_id_is_echoed_or_made(client):
    given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert made.headers["x-request-id"] != "<script>" and len(made.headers["x-request-id"]) == 32


async def test_unknown_api_path_is_problem_json(client):
    r = await client.get("/api/v1/nothing-here")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 404 and body["title"] == "Not Found" and body["instance"] == "/api/v1/nothing-here"


async def test_metrics_on_the_public_port_are_for_signed_in_operators_only(client):
    await client.host.start()
    await client.get("/healthz")
    anonymous = await client.get("/metrics")
    assert anonymous.status_code == 403 and anonymous.headers["content-type"] == "application/problem+json"
    assert "ppa_http" not in anonymous.text
    await sign_in_operator(client, client.host.service("identity"))
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert "ppa_http_request_duration_seconds_bucket" in r.text


async def test_with_a_metrics_port_the_public_app_answers_no_one_metrics(runtime, monkeypatch):
    monkeypatch.setattr(runtime.settings, "metrics_port", 9464)
    host = build_host(runtime)
    await host.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(host)), base_url="http://t") as c:
            await sign_in_operator(c, host.service("identity"))  # not even to an operator: Prometheus has its port
            r = await c.get("/metrics")
            assert r.status_code == 404 and "ppa_http" not in r.text
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=metrics_app()), base_url="http://t") as c:
            served = await c.get("/metrics")
            assert served.status_code == 200 and "ppa_http_request_duration_seconds_bucket" in served.text
            assert (await c.get("/healthz")).status_code == 404  # the metrics listener serves nothing else
    finally:
        await host.stop()


async def test_openapi_and_japanese_home_page(client):
    spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    home = await client.get("/")
    assert home.status_code == 200
    assert '<html lang="ja">' in home.text and "販売店・業者様向け管理画面" in home.text
