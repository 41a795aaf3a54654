"""Helpers shared by tests (importable: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import asyncio
import email
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import policy
from pathlib import Path
from typing import TYPE_CHECKING

from ppa_runtime.settings import Settings

if TYPE_CHECKING:
    from ppa_runtime.runtime import Runtime


class Inbox:
    """An aiosmtpd handler keeping every accepted message (the `inbox` fixture runs it on a loopback port)."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"

    def find(self, recipient: str, subject: str | None = None) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if m["To"] == recipient and subject in (None, m["Subject"])]

    async def wait_for(self, recipient: str, subject: str, count: int = 1,
                       timeout: float = 60) -> list[email.message.EmailMessage]:
        """The messages to `recipient` with exactly this subject, once there are `count` of them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if len(found := self.find(recipient, subject)) >= count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"no mail {subject!r} to {recipient} (got {[m['Subject'] for m in self.messages]})")


async def eventually(check, timeout: float = 45) -> object:
    """Poll an async check until it returns something truthy (returned), else fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


TEST_SECRET_KEY = "test-only-" + uuid.uuid4().hex + uuid.uuid4().hex  # per test run, never a constant


def make_settings(kind: str, tmp_path: Path, servers: dict[str, str] | None = None, **extra) -> Settings:
    """Settings isolated to one test: own data dir, own topic and database namespace."""
    fields: dict = {
        "data_dir": tmp_path / "data",
        "namespace": f"t{uuid.uuid4().hex[:10]}_",
        "consumer_backoff_seconds": 0.01,
        "consumer_max_attempts": 3,
        "sqlite_synchronous": "NORMAL",
        "log_json": True,
        **extra,
    }
    if kind == "distributed":
        assert servers is not None
        fields["kafka_bootstrap_servers"] = servers["kafka"]
        fields["mongodb_uri"] = servers["mongo"]
        fields.setdefault("secret_key", TEST_SECRET_KEY)  # processes on Kafka + MongoDB refuse to start without
    else:  # exported KAFKA_BOOTSTRAP_SERVERS/MONGODB_URI must not turn an embedded test into a distributed one
        fields["kafka_bootstrap_servers"] = None
        fields["mongodb_uri"] = None
    return Settings(**fields)


@asynccontextmanager
async def distributed(tmp_path: Path, servers: dict[str, str]) -> AsyncIterator[Runtime]:
    """The Kafka + MongoDB runtime of one test on these servers; its topics and databases go afterwards."""
    from ppa_runtime.runtime import Runtime

    settings = make_settings("distributed", tmp_path, servers)
    rt = await Runtime.open(settings)
    try:
        yield rt
    finally:
        await rt.close()
        await drop_namespace(settings)


async def drop_namespace(settings: Settings) -> None:
    """Delete a test's topics and databases, so a long run does not pile thousands of them on one broker."""
    from aiokafka.admin import AIOKafkaAdminClient
    from pymongo import AsyncMongoClient

    from ppa_runtime.kafka_security import client_options

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, **client_options(settings))
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(settings.namespace)]
        if mine:
            await admin.delete_topics(mine)
    except Exception:  # best effort: a test that broke the broker must not hide its own failure
        pass
    finally:
        await admin.close()
    client = AsyncMongoClient(settings.mongodb_uri_value)
    try:
        for name in await client.list_database_names():
            if name.startswith(settings.namespace):
                await client.drop_database(name)
    except Exception:
        pass
    finally:
        await client.close()


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a subprocess the same settings."""
    own = ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "MONGODB_URI_FILE")
    env = {k: v for k, v in os.environ.items() if k not in own}
    env.update({
        "PPA_DATA_DIR": str(settings.data_dir),
        "PPA_NAMESPACE": settings.namespace,
        "PPA_CONSUMER_BACKOFF_SECONDS": str(settings.consumer_backoff_seconds),
        "PPA_SQLITE_SYNCHRONOUS": settings.sqlite_synchronous,
    })
    env.pop("PPA_SECRET_KEY", None)
    if settings.secret_key is not None:
        env["PPA_SECRET_KEY"] = settings.secret_key.get_secret_value()
    if settings.distributed:
        env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers or ""
        env["MONGODB_URI"] = settings.mongodb_uri_value
    return env


class Portal:
    """An in-process platform behind an HTTP client, with agencies `a` and `b` and their bearer tokens."""

    def __init__(self, client, host, agency_ids: dict[str, str], tokens: dict[str, dict[str, str]]) -> None:
        self.client = client
        self.host = host
        self.agency_ids = agency_ids
        self.tokens = tokens


def portal(runtime, services: list[str], agencies: tuple[str, ...] = ("a", "b")):
    """Async context manager: start the named services, create the agencies, log each in through the API."""
    from contextlib import asynccontextmanager

    import httpx

    from ppa.platform import build_host
    from ppa_contracts.identity import AgencyProfile
    from ppa_gateway.app import create_app

    @asynccontextmanager
    async def run():
        host = build_host(runtime, services)
        app = create_app(host)
        await host.start()
        try:
            identity = host.service("identity")
            ids = {w: await identity.create_agency(f"{w}@example.jp", "password123", AgencyProfile(company=f"{w}電力"))
                   for w in agencies}
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                tokens = {}
                for w in agencies:
                    r = await client.post("/api/v1/auth/token",
                                          data={"username": f"{w}@example.jp", "password": "password123"})
                    assert r.status_code == 200, r.text
                    tokens[w] = {"Authorization": f"Bearer {r.json()['access_token']}"}
                yield Portal(client, host, ids, tokens)
        finally:
            await host.stop()

    return run()


def live_portal(runtime, services: list[str] | None = None):
    """Async context manager: the gateway app on a real loopback port (for a browser); yields (base_url, host)."""
    import asyncio
    from contextlib import asynccontextmanager

    import uvicorn

    from ppa.platform import build_host
    from ppa_gateway.app import create_app

    @asynccontextmanager
    async def run():
        host = build_host(runtime, services)
        app = create_app(host)
        await host.start()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off"))
        task = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
            port = server.servers[0].sockets[0].getsockname()[1]
            yield f"http://127.0.0.1:{port}", host
        finally:
            server.should_exit = True
            await task
            await host.stop()

    return run()


SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


async def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under artifacts/screenshots/ (kept by CI as an artifact)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
