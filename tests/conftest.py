"""Fixtures shared by every test: settings per runtime, real Kafka/MongoDB servers for the distributed one.

The distributed runtime takes KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI from the environment, else
starts testcontainers when a Docker engine answers, else skips with the reason — except under
CI=true, where a missing server is a failure, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ppa_runtime.runtime import Runtime
from ppa_runtime.settings import Settings
from support import Inbox, distributed, drop_namespace, make_settings

RUNTIMES = ["embedded", "distributed"]


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, str]]:
    """Addresses of a real Kafka broker and MongoDB-protocol server."""
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    mongo = os.environ.get("MONGODB_URI")
    if kafka and mongo:
        yield {"kafka": kafka, "mongo": mongo}
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.mongodb import MongoDbContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as k, MongoDbContainer("mongo:8") as m:
            yield {"kafka": k.get_bootstrap_server(), "mongo": m.get_connection_url()}
        return
    reason = "no KAFKA_BOOTSTRAP_SERVERS/MONGODB_URI set and no Docker engine answers (run .ci/run to start real servers)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def secure_kafka() -> dict[str, str]:
    """The variables that reach a Kafka broker through SASL_SSL (SCRAM-SHA-512, client certificate).

    The kafka.env that `.ci/kafka.sh start-sasl-ssl` writes, named by PPA_TEST_SECURE_KAFKA_ENV; or the environment
    itself when it already points at such a broker (the CI's second pass of the bus suite).
    """
    if os.environ.get("KAFKA_SECURITY_PROTOCOL") == "SASL_SSL":
        return {k: v for k, v in os.environ.items() if k.startswith("KAFKA_")}
    return _exported("PPA_TEST_SECURE_KAFKA_ENV", "bash .ci/kafka.sh start-sasl-ssl DIR", "kafka.env")


@pytest.fixture(scope="session")
def secure_mongo() -> str:
    """The URI of a MongoDB-protocol server that speaks TLS only with its own CA (`?tls=true&tlsCAFile=...`).

    From the ferretdb.env that `.ci/ferretdb.sh start-tls` writes, named by PPA_TEST_SECURE_MONGO_ENV; or
    MONGODB_URI itself when it asks for TLS (the CI's second pass).
    """
    uri = os.environ.get("MONGODB_URI", "")
    if "tls=true" in uri:
        return uri
    return _exported("PPA_TEST_SECURE_MONGO_ENV", "bash .ci/ferretdb.sh start-tls DIR", "ferretdb.env")["MONGODB_URI"]


def _exported(variable: str, start: str, name: str) -> dict[str, str]:
    """The `export K='V'` lines of the file a CI script wrote, else a skip (a failure under CI=true)."""
    path = os.environ.get(variable)
    if path and Path(path).is_file():
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        pairs = (line.removeprefix("export ").split("=", 1) for line in lines if "=" in line)
        return {key: value.strip("'") for key, value in pairs}
    reason = f"no such server: run `{start}` and set {variable}=DIR/{name}"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(params=RUNTIMES)
def runtime_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def settings(runtime_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Settings]:
    servers = request.getfixturevalue("servers") if runtime_kind == "distributed" else None
    made = make_settings(runtime_kind, tmp_path, servers)
    yield made
    if servers:
        await drop_namespace(made)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = await Runtime.open(settings)
    try:
        yield rt
    finally:
        await rt.close()


@pytest.fixture
async def distributed_runtime(servers, tmp_path: Path) -> AsyncIterator[Runtime]:
    """The Kafka + MongoDB runtime alone, for tests of that runtime's own machinery; its topics and databases go
    afterwards."""
    async with distributed(tmp_path, servers) as rt:
        yield rt


CHROMIUM = os.environ.get("PPA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture
async def browser_page():
    """A fresh page in Debian's headless chromium driven by Playwright (fails under CI=true when missing)."""
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} not found (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo",
                                                viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            page.set_default_timeout(20_000)
            # the pages run under a strict Content-Security-Policy: anything it blocks is a bug
            blocked: list[str] = []
            page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
            yield page
            assert not blocked, f"blocked by the Content-Security-Policy: {blocked}"
        finally:
            await browser.close()


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd) on a free loopback port: (the messages it accepted, its port)."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()
