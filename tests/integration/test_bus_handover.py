"""Kafka: a member of a consumer group gives its partitions up only once the batch in hand is committed, so when
a second member joins, no record is applied by both and the first member's commit is not refused; a member dropped
from the group while it held a batch (a stall past its session) has that commit refused without failing, and the
records come again."""

from __future__ import annotations

import asyncio
import time

import pytest

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_contracts.topics import IDENTITY_AGENCY
from ppa_runtime.bus_kafka import KafkaBus
from support import drop_namespace, make_settings

pytestmark = pytest.mark.kafka
GROUP = "handover.test"
EVENTS = 60


def registered(i: int) -> Envelope:
    payload = AgencyRegistered(agency_id=f"a{i}", email=f"a{i}@example.jp", profile=AgencyProfile(company=f"社{i}"))
    return Envelope.wrap(payload, subject=f"agency-{i}", correlation_id=f"c{i}", aggregate_version=1)


async def fetch_some(sub, timeout: float = 30) -> list:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        got = await sub.fetch(timeout=0.5, max_records=EVENTS // 3)
        if got:
            return got
    raise AssertionError("nothing fetched")


async def test_a_joining_member_waits_for_the_batch_in_hand_and_no_record_is_applied_twice(servers, tmp_path):
    settings = make_settings("distributed", tmp_path, servers)
    first = KafkaBus(servers["kafka"], settings.namespace)
    second = KafkaBus(servers["kafka"], settings.namespace)
    await first.start()
    await second.start()
    try:
        # keyed by agency id: over every partition
        await first.publish(IDENTITY_AGENCY, [registered(i) for i in range(EVENTS)])
        a = await first.subscribe(GROUP, [IDENTITY_AGENCY])
        in_hand = await fetch_some(a)  # the only member: every partition is its own
        assert a.in_hand.locked()

        joining = asyncio.create_task(second.subscribe(GROUP, [IDENTITY_AGENCY]))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not a.revoked and loop.time() < deadline:  # the group asks the first member to give them up
            await asyncio.sleep(0.05)
        assert a.revoked, "no rebalance began"
        assert not joining.done()  # the group cannot assign anything while the batch is in hand
        await a.commit(in_hand)  # accepted: the first member is still in the generation that fetched it
        b = await asyncio.wait_for(joining, 60)

        committed = {(p.topic, p.partition): p.committed for p in await first.lag(GROUP, [IDENTITY_AGENCY])}
        for r in in_hand:
            assert committed[(r.topic, r.partition)] > r.offset

        seen = {r.envelope.id for r in in_hand}
        again: list = []

        async def drain(sub) -> None:
            while True:
                got = await sub.fetch(timeout=0.5, max_records=EVENTS)
                if not got:
                    return
                again.extend(got)
                await sub.commit(got)

        while len(seen) + len(again) < EVENTS and loop.time() < deadline:
            await asyncio.gather(drain(a), drain(b))
        assert seen.isdisjoint(r.envelope.id for r in again)  # nothing the first member committed came again
        assert len(seen) + len({r.envelope.id for r in again}) == EVENTS
        await a.close()
        await b.close()
    finally:
        await first.close()
        await second.close()
        await drop_namespace(settings)


async def test_a_member_dropped_from_the_group_mid_batch_goes_on_and_its_records_come_again(servers, tmp_path):
    settings = make_settings("distributed", tmp_path, servers)
    bus = KafkaBus(servers["kafka"], settings.namespace)
    # the broker's shortest session: a stalled member is dropped after 6 s without a heartbeat
    bus.consumer_settings.update(session_timeout_ms=6000, heartbeat_interval_ms=1000)
    await bus.start()
    try:
        await bus.publish(IDENTITY_AGENCY, [registered(i) for i in range(EVENTS)])
        sub = await bus.subscribe(GROUP, [IDENTITY_AGENCY])
        in_hand = await fetch_some(sub)
        time.sleep(8)  # the whole process stalls (no heartbeat) past its session, as under a long pause
        await sub.commit(in_hand)  # refused by the group: logged, not raised
        committed = {(p.topic, p.partition): p.committed for p in await bus.lag(GROUP, [IDENTITY_AGENCY])}
        assert all(committed.get((r.topic, r.partition), 0) <= r.offset for r in in_hand)

        again: list = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while len({r.envelope.id for r in again}) < EVENTS and loop.time() < deadline:
            got = await sub.fetch(timeout=0.5, max_records=EVENTS)
            again += got
            await sub.commit(got)
        assert {r.envelope.id for r in in_hand} <= {r.envelope.id for r in again}  # delivered again
        assert len({r.envelope.id for r in again}) == EVENTS
        await sub.close()
    finally:
        await bus.close()
        await drop_namespace(settings)
