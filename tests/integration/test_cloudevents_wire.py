"""Every record on every topic is a CloudEvent to the CloudEvents SDK (Kafka binary mode), after a short workload on a
real broker: dead letters included, among them those of records a foreign producer sent without CloudEvents headers,
which keep that record's key, headers and bytes. Each record's `dataschema` is the `$id` of its type's JSON Schema."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat

from ppa_contracts import dlq
from ppa_contracts.ops import DeadLetter
from ppa_contracts.topics import NOTIFY_REQUESTS
from support import portal

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "events" / "schemas"
SERVICES = ["identity", "linking", "metering", "billing", "notify"]
# as a foreign or legacy producer sends them: no ce_* headers at all
FOREIGN = [
    (b"legacy-0042", [("origin", b"legacy-exporter"), ("trace", b"\xff\xfe")], b"\x00\x01not json\xff"),
    (None, [], b'{"recipient": "x@example.jp"}'),
]


async def every_record(bus) -> dict[str, list]:
    """Each topic's records from its first offset to its end, as the broker holds them."""
    reader = AIOKafkaConsumer(**bus.connection, group_id=None, enable_auto_commit=False)
    await reader.start()
    try:
        tps = await bus.partitions(await bus.topics())
        ends = await reader.end_offsets(tps)
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        out: dict[str, list] = {bus.logical(tp.topic): [] for tp in tps}
        todo = {tp for tp in tps if ends[tp] > 0}
        while todo:
            for tp, messages in (await reader.getmany(*todo, timeout_ms=1000)).items():
                out[bus.logical(tp.topic)] += [m for m in messages if m.offset < ends[tp]]
            todo = {tp for tp in todo if await reader.position(tp) < ends[tp]}
        return out
    finally:
        await reader.stop()


async def dead_letters(bus, topic: str, want: int) -> list:
    for _ in range(300):
        letters = (await every_record(bus)).get(dlq(topic), [])
        if len(letters) >= want:
            return letters
        await asyncio.sleep(0.2)
    raise AssertionError(f"fewer than {want} dead letters on {dlq(topic)}")


def parsed(message):
    return from_binary(KafkaMessage(headers=dict(message.headers), key=message.key, value=message.value), JSONFormat())


async def test_every_record_on_every_topic_dead_letters_included_is_a_cloudevent(distributed_runtime):
    bus = distributed_runtime.bus
    async with portal(distributed_runtime, SERVICES):  # two agencies sign up: their events, mails and results
        for key, headers, value in FOREIGN:
            await bus.producer.send_and_wait(bus.physical(NOTIFY_REQUESTS), value=value, key=key, headers=headers)
        letters = await dead_letters(bus, NOTIFY_REQUESTS, len(FOREIGN))
    records = await every_record(bus)
    assert {t for t, rs in records.items() if rs} >= {"ppa.identity.agency.v1", NOTIFY_REQUESTS, dlq(NOTIFY_REQUESTS)}
    foreign = {(m.key, tuple(m.headers), m.value) for m in records[NOTIFY_REQUESTS]
               if not any(name.startswith("ce_") for name, _ in m.headers)}
    assert foreign == {(k, tuple(h), v) for k, h, v in FOREIGN}
    for topic, messages in records.items():
        for m in messages:
            if (m.key, tuple(m.headers), m.value) in foreign:
                with pytest.raises(Exception):  # the SDK is strict: no specversion, no CloudEvent
                    parsed(m)
                continue
            event = parsed(m)  # raises on an empty subject, a missing attribute, ...
            assert event.get_subject() and m.key == event.get_subject().encode(), (topic, m.offset)
            schema = event.get_dataschema()
            assert schema == f"urn:ppa:event:{event.get_type()}", (topic, m.offset)
            assert json.loads((SCHEMAS / f"{event.get_type()}.json").read_text())["$id"] == schema

    by_position = {}
    for m in letters:
        event = parsed(m)
        letter = DeadLetter.model_validate(event.get_data())
        assert event.get_type() == DeadLetter.event_type() and letter.original_topic == NOTIFY_REQUESTS
        by_position[letter.original_partition, letter.original_offset] = (event, letter)
    for m in records[NOTIFY_REQUESTS]:
        if (m.key, tuple(m.headers), m.value) not in foreign:
            continue
        event, letter = by_position[m.partition, m.offset]
        assert letter.consumer_group == "notify.email" and letter.attempts == 1
        assert letter.error.startswith("ValidationError: ")  # why: no attributes, so no event
        headers = [(h.name, h.value.encode() if h.value is not None else base64.b64decode(h.value_base64))
                   for h in letter.original_headers]
        assert headers == list(m.headers)
        if m.key is not None:  # the key kept, and the letter keyed and subjected by it
            assert letter.original_key.encode() == m.key and event.get_subject() == m.key.decode()
        else:
            assert letter.original_key is None and event.get_subject() == f"{NOTIFY_REQUESTS}/{m.partition}/{m.offset}"
        try:
            json.loads(m.value)
        except ValueError:
            assert base64.b64decode(letter.original_value_base64) == m.value
        else:
            assert letter.original_value_base64 is None and letter.original["data"] == json.loads(m.value)
