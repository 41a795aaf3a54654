"""Scale out on Kafka, as deployed: two gateway APIs and two metering workers (plus identity and billing workers),
each its own `ppa` process. The metering workers split the readings topic's partitions (PPA_TOPIC_PARTITIONS
gives it 4); one is killed with SIGKILL while homes stream in through both APIs; the group rebalances and the
survivor applies every partition from the last commit. `ppa simulate --verify` then finds every home's daily
usage equal to an independent recomputation from its raw readings: no reading lost, none counted twice."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops_helpers import wait_until
from ppa_contracts.topics import METERING_DAILY_USAGE, METERING_READINGS
from ppa_runtime.bus_kafka import _partition
from ppa_runtime.runtime import Runtime
from ppa.simulate import serial_number
from support import drop_namespace, make_settings, settings_env

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

PPA = str(Path(sys.executable).parent / "ppa")
GROUP = "metering.daily-usage"
READING_PARTITIONS = 4
EMAIL, PASSWORD = "scale@example.jp", "scaleoutpass1"
START, DAYS, SEED = date(2024, 6, 10), 3, 11
# homes 1–8 stream before and across the kill, 9–20 only after it; each wave half through each API
BEFORE, AFTER = range(1, 9), range(9, 21)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Process:
    name: str
    command: list[str]
    log: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self, name: str) -> list[dict]:
        """The process's JSON log lines of one event."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                entry = json.loads(line)
                if entry.get("event") == name:
                    out.append(entry)
        return out

    def assigned(self, group: str) -> list[list[str]]:
        """Each assignment of a consumer group to this process, in order, as 'topic/partition' names."""
        return [e["partitions"] for e in self.events("partitions_assigned") if e.get("group") == group]


@dataclass
class Scaled:
    settings: object
    env: dict[str, str]
    apis: list[Process]
    metering: list[Process]
    all: list[Process] = field(default_factory=list)


async def batches_applied(process: Process, group: str) -> float:
    """What the process's /metrics says its consumer of `group` applied as whole batches."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{process.url}/metrics")).text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "ppa_consumer_batches_total" and s.labels.get("group") == group)


@pytest.fixture
async def scaled(tmp_path, servers):
    settings = make_settings("distributed", tmp_path, servers,
                             topic_partitions=f"{METERING_READINGS}={READING_PARTITIONS},{METERING_DAILY_USAGE}=2")
    env = {**settings_env(settings), "PPA_TOPIC_PARTITIONS": settings.topic_partitions, "LOG_LEVEL": "INFO",
           "PPA_LOG_JSON": "true"}
    created = await asyncio.to_thread(subprocess.run, [PPA, "agency", "create", "--email", EMAIL, "--password",
                                                       PASSWORD, "--company", "分散電力"],
                                      env=env, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr

    def process(name: str, *args: str) -> Process:
        port = free_port()
        where = ["--port", str(port)] if args[0] == "api" else ["--health-host", "127.0.0.1", "--health-port", str(port)]
        return Process(name, [PPA, *args, *where], tmp_path / f"{name}.log", port)

    apis = [process(f"api{i}", "api", "gateway") for i in (1, 2)]
    metering = [process(f"metering{i}", "worker", "metering") for i in (1, 2)]
    everything = [*apis, process("identity", "worker", "identity"), process("billing", "worker", "billing"),
                  *metering]
    try:
        for p in everything:
            p.proc = subprocess.Popen(p.command, env=env, stdout=subprocess.DEVNULL, stderr=p.log.open("wb"))

        async def ready() -> bool:
            async with httpx.AsyncClient(timeout=5) as client:
                for p in everything:
                    assert p.proc.poll() is None, f"{p.name} exited: {p.log.read_text()[-2000:]}"
                    try:
                        if (await client.get(f"{p.url}/healthz")).status_code != 200:
                            return False
                    except httpx.TransportError:
                        return False
            return True

        await wait_until(ready, 300, "every process ready")  # slow only on a loaded machine
        yield Scaled(settings, env, apis, metering, everything)
    finally:
        for p in everything:
            if p.proc is not None and p.proc.poll() is None:
                p.proc.terminate()
        for p in everything:
            if p.proc is not None:
                try:
                    await asyncio.to_thread(p.proc.wait, 30)
                except subprocess.TimeoutExpired:
                    p.proc.kill()
        await drop_namespace(settings)


def simulate(scaled: Scaled, api: Process, homes: range) -> subprocess.Popen:
    """`ppa simulate --verify` for some homes through one API (anomalies on: duplicates, late, shuffled batches)."""
    return subprocess.Popen(
        [PPA, "simulate", "--homes", str(len(homes)), "--first-home", str(homes.start), "--days", str(DAYS),
         "--start", START.isoformat(), "--url", api.url, "--agency-email", EMAIL, "--agency-password", PASSWORD,
         "--register", "--seed", str(SEED), "--batch-hours", "6", "--concurrency", "2", "--auth-wait", "120",
         "--verify", "--verify-timeout", "150"],
        env=scaled.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def halves(homes: range) -> list[range]:
    middle = homes.start + len(homes) // 2
    return [range(homes.start, middle), range(middle, homes.stop)]


def test_the_homes_cover_every_partition():
    """The test's premise: both waves send readings to every partition of the readings topic."""
    partitions = list(range(READING_PARTITIONS))
    for wave in (BEFORE, AFTER):
        assert {_partition(serial_number(i).encode(), partitions, partitions) for i in wave} == set(partitions)


async def test_two_metering_workers_split_the_partitions_and_the_survivor_takes_over_a_killed_one(scaled):
    runtime = await Runtime.open(scaled.settings)
    try:
        bus = runtime.bus
        assert len(await bus.partitions([METERING_READINGS])) == READING_PARTITIONS
        assert len(await bus.partitions([METERING_DAILY_USAGE])) == 2
        doomed, survivor = scaled.metering

        # Homes stream in through both APIs; once both workers have applied batches of readings, one is killed.
        before = [simulate(scaled, api, homes) for api, homes in zip(scaled.apis, halves(BEFORE))]

        async def both_applied() -> bool:
            return all([await batches_applied(w, GROUP) > 0 for w in scaled.metering])

        await wait_until(both_applied, 120, "both metering workers applying readings")
        held = doomed.assigned(GROUP)[-1]
        assert held and set(held).isdisjoint(survivor.assigned(GROUP)[-1]), (held, survivor.assigned(GROUP))
        assert {p.split("/")[0] for p in held} == {METERING_READINGS}
        doomed.proc.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(doomed.proc.wait, 30) == -signal.SIGKILL
        ends_at_kill = await bus.ends([METERING_READINGS])

        # More homes after the kill, on every partition (the killed worker's too), through both APIs.
        after = [simulate(scaled, api, homes) for api, homes in zip(scaled.apis, halves(AFTER))]
        for proc in [*before, *after]:
            out, err = await asyncio.to_thread(proc.communicate, timeout=240)
            assert proc.returncode == 0, f"{out}\n{err}"
            summary = json.loads(out)
            assert summary["verified"] is True and summary["mismatched_customers"] == 0, summary
            assert summary["errors"] == [] and summary["rejected"] == 0, summary
            assert summary["accepted"] == summary["unique_readings"] > 0, summary
            assert summary["duplicates"] == summary["anomalies"]["expected_duplicates"] > 0, summary

        # The survivor took every partition over and committed each to its end, past what arrived after the kill.
        async def caught_up() -> bool:
            return all(p.lag == 0 for p in await bus.lag(GROUP, [METERING_READINGS]))

        await wait_until(caught_up, 60, "the daily-usage group at the end of every partition")
        lag = await bus.lag(GROUP, [METERING_READINGS])
        assert {(p.topic, p.partition) for p in lag} == set(ends_at_kill)
        for p in lag:
            assert p.committed == p.end > ends_at_kill[(p.topic, p.partition)], p
        assert sorted(survivor.assigned(GROUP)[-1]) == [f"{METERING_READINGS}/{i}" for i in range(READING_PARTITIONS)]
        assert survivor.proc.poll() is None and survivor.events("background_task_crashed") == []
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"{survivor.url}/healthz")).status_code == 200
    finally:
        await runtime.close()
