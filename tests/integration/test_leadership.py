"""Leadership on the bus: with several replicas of a service's workers, one of them at a time publishes the
service's outbox and runs its loops. On Kafka the member of a consumer group that holds its one partition leads;
the embedded runtime runs one worker process per service and always leads."""

from __future__ import annotations

import asyncio

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_contracts.topics import IDENTITY_AGENCY
from ppa_runtime.relay import OutboxRelay


def registered(i: int) -> tuple[str, Envelope]:
    payload = AgencyRegistered(agency_id=f"L{i}", email=f"l{i}@example.jp", profile=AgencyProfile(company=f"社{i}"))
    return IDENTITY_AGENCY, Envelope.wrap(payload, subject=f"L{i}", correlation_id=f"c{i}", aggregate_version=1)


async def until(check, timeout: float = 40.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_one_member_leads_and_hands_over_when_it_leaves(distributed_runtime):
    bus = distributed_runtime.bus
    first, second = await bus.leadership("testsvc.leader"), await bus.leadership("testsvc.leader")
    other = await bus.leadership("othersvc.leader")
    try:
        await until(lambda: first.held.is_set() or second.held.is_set())
        await asyncio.sleep(3)  # settled: still exactly one
        assert first.held.is_set() != second.held.is_set()
        assert other.held.is_set()  # another name is a group of its own
        leader, follower = (first, second) if first.held.is_set() else (second, first)
        async with follower.turn() as holding:
            assert not holding
        await leader.close()
        await until(follower.held.is_set)
        async with follower.turn() as holding:
            assert holding
        assert not leader.held.is_set()
    finally:
        for one in (first, second, other):
            await one.close()
    assert "ppa.runtime.leadership" not in await bus.topics()  # the group's topic is no event topic


async def test_two_relays_of_one_service_publish_each_event_once(distributed_runtime):
    runtime = distributed_runtime
    store = runtime.eventstore("testsvc")
    leaderships = [await runtime.bus.leadership("testsvc.leader") for _ in range(2)]
    relays = [OutboxRelay("testsvc", store, runtime.bus, idle_poll=0.05) for _ in range(2)]
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(relay.run(stop, leadership))
             for relay, stop, leadership in zip(relays, stops, leaderships, strict=True)]
    tail = await runtime.bus.tail([IDENTITY_AGENCY], "end")
    got: list = []
    try:
        await until(lambda: any(one.held.is_set() for one in leaderships))
        for i in range(30):
            await store.append(f"agency:L{i}", 0, [registered(i)])
            await asyncio.sleep(0.02)
        await until(lambda: sum(r.published for r in relays) >= 30)
        leading = next(n for n, one in enumerate(leaderships) if one.held.is_set())
        assert relays[leading].published == 30 and relays[1 - leading].published == 0
        # the leader's process stops: the other takes over what comes next
        stops[leading].set()
        await tasks[leading]
        await leaderships[leading].close()
        for i in range(30, 40):
            await store.append(f"agency:L{i}", 0, [registered(i)])
        await until(lambda: relays[1 - leading].published >= 10)
        while len(got) < 40:
            batch = await tail.fetch(timeout=1.0)
            if not batch:
                break
            got += batch
        await asyncio.sleep(1.0)
        got += await tail.fetch(timeout=1.0)
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for one in leaderships:
            await one.close()
        await tail.close()
    subjects = [r.envelope.subject for r in got]
    assert sorted(subjects) == sorted(f"L{i}" for i in range(40))  # each once
    assert relays[1 - leading].published == 10


async def test_the_embedded_runtime_always_leads(runtime):
    leadership = await runtime.bus.leadership("testsvc.leader")
    if runtime.kind == "distributed":
        await until(leadership.held.is_set)
    assert leadership.held.is_set()
    async with leadership.turn() as holding:
        assert holding
    await leadership.close()
