"""What a process logs while its Kafka broker is away (a private broker, stopped and started again): each kind of
warning or error once, then once per PPA_LOG_REPEAT_SECONDS with how often it came and for how long, instead of
every client retry; and no error at all at start-up (the client's wait for a group coordinator is expected)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from outage_support import Server, unavailable
from support import TEST_SECRET_KEY

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

PPA = str(Path(sys.executable).parent / "ppa")
REPEAT_SECONDS = 5
STOPPED_SECONDS = 20  # the 60 s stop, shorter: the bound below is per interval


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lines(log: Path, start: int = 0) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()[start:] if line.startswith("{")]


def kind(line: dict) -> tuple:
    """A kind of line: whose, how grave, and its text without the numbers and names that vary (node ids, groups)."""
    return line.get("logger"), line["level"], re.sub(r"\d+|group \S+", "#", line["event"])


@pytest.fixture
async def broker(tmp_path: Path):
    server = Server("kafka.sh", tmp_path / "kafka")
    await server.start()
    try:
        yield server
    finally:
        await server.run("stop")


async def test_a_broker_outage_is_logged_once_per_interval_with_counts_and_start_up_without_errors(broker, tmp_path):
    mongo = os.environ.get("MONGODB_URI")
    if not mongo:
        unavailable("MONGODB_URI is not set (.ci/run starts FerretDB)")
    log = tmp_path / "ppa.log"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.address, "MONGODB_URI": mongo,
           "PPA_SECRET_KEY": TEST_SECRET_KEY, "PPA_NAMESPACE": f"logs{os.getpid()}_",
           "PPA_LOG_REPEAT_SECONDS": str(REPEAT_SECONDS), "PPA_LOG_JSON": "true", "LOG_LEVEL": "INFO"}
    with log.open("wb") as err:
        proc = subprocess.Popen([PPA, "up", "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
                                env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        while "ready:" not in (printed := await asyncio.to_thread(proc.stdout.readline)):
            assert printed, log.read_text()[-3000:]
        def joined(started: list[dict]) -> bool:  # every consumer group has its partitions
            groups = {line["group"] for line in started if line["event"] == "consumer_started"}
            assigned = {line["group"] for line in started if line["event"] == "partitions_assigned"}
            return any(line["event"] == "host_started" for line in started) and groups <= assigned

        while not joined(started := lines(log)):
            assert proc.poll() is None, log.read_text()[-3000:]
            await asyncio.sleep(0.5)
        assert not [line for line in started if line["level"] in ("error", "critical")], \
            "start-up logged errors"
        before = len(log.read_text().splitlines())
        async with broker.stopped():
            await asyncio.sleep(STOPPED_SECONDS)
            during = lines(log, before)
        assert proc.poll() is None
    finally:
        proc.send_signal(2)
        await asyncio.to_thread(proc.wait, 30)

    port = broker.address.rpartition(":")[2]
    # what is down: the client names the broker it cannot reach, and how long it has tried
    assert any(port in line["event"] for line in during), during
    per_kind = Counter(kind(line) for line in during if line["level"] in ("warning", "error"))
    assert per_kind, "nothing said about the broker being away"
    most = STOPPED_SECONDS // REPEAT_SECONDS + 2  # the first line, then one per interval at most
    assert max(per_kind.values()) <= most, per_kind
    repeats = [line for line in during if "repeated" in line]
    assert repeats and all(line["repeated"] > 0 and line["for_seconds"] >= 0 for line in repeats)
    assert max(line["for_seconds"] for line in repeats) >= STOPPED_SECONDS - 2 * REPEAT_SECONDS
    assert len(during) < 100, f"{len(during)} lines in {STOPPED_SECONDS} s"
