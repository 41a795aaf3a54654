"""A MongoDB outage, on a private FerretDB stopped and started again (the broker stays up): readiness names it
within 5 s, the device API answers 503 with Retry-After within 2 s, the operators' pages say so without a session,
and after the restart the device's retry of the same batch is counted once."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from outage_support import Server, fleet, outage_banner, unavailable
from ppa_runtime.runtime import Runtime
from support import distributed

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Server]:
    """A FerretDB of this test alone: it is stopped and started again."""
    server = Server("ferretdb.sh", tmp_path / "ferretdb")
    await server.start()
    try:
        yield server
    finally:
        await server.run("stop")


@pytest.fixture
async def runtime(database: Server, tmp_path: Path) -> AsyncIterator[Runtime]:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not kafka:
        unavailable("KAFKA_BOOTSTRAP_SERVERS is not set (.ci/run starts Kafka)")
    async with distributed(tmp_path, {"kafka": kafka, "mongo": database.address}) as rt:
        yield rt


async def test_a_database_outage_is_named_refused_quickly_and_the_retry_counts_once(runtime, database):
    async with fleet(runtime) as f:
        await f.morning_sent()
        async with database.stopped() as since:
            await f.refused("mongodb", since)
            page = await f.client.get("/ops/health")  # no operator session can be read: the page says why
            assert page.status_code == 503
            dependency, text = outage_banner(page.text)
            assert dependency == "mongodb" and "から" in text
        await f.recovered()
