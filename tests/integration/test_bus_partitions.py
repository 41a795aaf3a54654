"""Where published events land: a key's partition and order (long lists go as batches of their own on Kafka,
single events join shared batches), on both runtimes; Kafka topics grown to PPA_TOPIC_PARTITIONS, never shrunk."""

from __future__ import annotations

import asyncio

from aiokafka.partitioner import DefaultPartitioner

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_contracts.topics import IDENTITY_AGENCY, OPS_AUDIT
from ppa_runtime.bus_kafka import OWN_BATCHES_FROM, KafkaBus
from support import drop_namespace, make_settings


def registered(i: int, key: str) -> Envelope:
    payload = AgencyRegistered(agency_id=f"a{i}", email=f"a{i}@example.jp", profile=AgencyProfile(company=f"社{i}"))
    return Envelope.wrap(payload, subject=key, correlation_id=f"c{i}", aggregate_version=i + 1)


async def read_all(tail, want: int, timeout: float = 30) -> list:
    out: list = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(out) < want and loop.time() < deadline:
        out += await tail.fetch(timeout=0.5)
    return out


async def test_a_keys_events_keep_their_order_on_one_partition_in_long_and_single_publishes(runtime):
    keys = [f"a{k}" for k in range(7)]
    events = [registered(i, keys[i % len(keys)]) for i in range(OWN_BATCHES_FROM * 3)]
    singles = [registered(i, keys[i % len(keys)]) for i in range(len(events), len(events) + 20)]
    await runtime.bus.publish(IDENTITY_AGENCY, events)
    for event in singles:
        await runtime.bus.publish(IDENTITY_AGENCY, [event])
    tail = await runtime.bus.tail([IDENTITY_AGENCY], "beginning")
    try:
        got = await read_all(tail, len(events) + len(singles))
    finally:
        await tail.close()
    assert sorted(r.envelope.id for r in got) == sorted(e.id for e in events + singles)
    partitions = len(await runtime.bus.ends([IDENTITY_AGENCY]))
    for key in keys:
        mine = sorted((r for r in got if r.envelope.subject == key), key=lambda r: r.offset)
        assert [r.aggregateversion for r in mine] == [e.aggregateversion for e in events + singles
                                                      if e.subject == key]
        # the partition any Kafka client (murmur2 of the key) would pick; the embedded log has one
        assert {r.partition for r in mine} == {DefaultPartitioner()(key.encode(), list(range(partitions)), [])}


async def test_kafka_topics_grow_to_the_partitions_set_and_are_never_shrunk(servers, tmp_path):
    settings = make_settings("distributed", tmp_path, servers, topic_partitions=f"{OPS_AUDIT}=2")

    async def counts(partitions: dict[str, int] | None) -> dict[str, int]:
        bus = KafkaBus(servers["kafka"], settings.namespace, partitions=partitions)
        await bus.start()
        try:
            found = await bus.partitions([OPS_AUDIT, f"{OPS_AUDIT}.dlq", IDENTITY_AGENCY])
        finally:
            await bus.close()
        return {bus.logical(t): sum(1 for tp in found if tp.topic == t) for t in {tp.topic for tp in found}}

    try:
        assert await counts(settings.partitions()) == {OPS_AUDIT: 2, f"{OPS_AUDIT}.dlq": 2, IDENTITY_AGENCY: 3}
        assert await counts({OPS_AUDIT: 3}) == {OPS_AUDIT: 3, f"{OPS_AUDIT}.dlq": 3, IDENTITY_AGENCY: 3}
        assert await counts({OPS_AUDIT: 1, "default": 1}) == {OPS_AUDIT: 3, f"{OPS_AUDIT}.dlq": 3, IDENTITY_AGENCY: 3}
        assert await counts({"default": 4}) == {OPS_AUDIT: 4, f"{OPS_AUDIT}.dlq": 4, IDENTITY_AGENCY: 4}
    finally:
        await drop_namespace(settings)
