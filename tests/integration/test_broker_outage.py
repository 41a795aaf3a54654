"""A Kafka outage, on a private broker stopped and started again: readiness names it within 5 s, the device API
answers 503 with Retry-After within 2 s, the operators' pages show it, and after the restart the device's retry of
the same batch is counted once: nothing lost, nothing twice."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from outage_support import Server, fleet, outage_banner, unavailable
from ppa_runtime.runtime import Runtime
from support import distributed

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Server]:
    """A Kafka broker of this test alone: it is stopped and started again."""
    server = Server("kafka.sh", tmp_path / "kafka")
    await server.start()
    try:
        yield server
    finally:
        await server.run("stop")


@pytest.fixture
async def runtime(broker: Server, tmp_path: Path) -> AsyncIterator[Runtime]:
    mongo = os.environ.get("MONGODB_URI")
    if not mongo:
        unavailable("MONGODB_URI is not set (.ci/run starts FerretDB)")
    async with distributed(tmp_path, {"kafka": broker.address, "mongo": mongo}) as rt:
        yield rt


async def test_a_broker_outage_is_named_refused_quickly_and_the_retry_counts_once(runtime, broker):
    async with fleet(runtime) as f:
        await f.morning_sent()
        async with broker.stopped() as since:
            await f.refused("kafka", since)
            ops = (await f.client.get("/ops/health")).text  # answered without waiting for the broker's timeouts
            dependency, text = outage_banner(ops)
            assert dependency == "kafka" and "に接続できません" in text and "から" in text
            row = re.search(r'<tr class="(\w+)" data-dependency="kafka">(.*?)</tr>', ops, re.S)
            assert row.group(1) == "down" and "接続できません" in row.group(2)
            assert 'data-dependency="mongodb"' in ops and "表示できません" in ops
            for path in ("/ops/events", "/ops/dead-letters"):  # they read the broker: a page saying so instead
                refused = await f.client.get(path)
                assert refused.status_code == 503 and outage_banner(refused.text)[0] == "kafka", path
                assert "イベント・デッドレター" in refused.text
        await f.recovered()
