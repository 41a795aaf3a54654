"""One behaviour suite for the event store, outbox relay, event bus and consumers, on both runtimes."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest
from ops_helpers import publish_broken

from ppa_contracts import Envelope, Payload, dlq
from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_contracts.ops import DeadLetter
from ppa_contracts.topics import IDENTITY_AGENCY
from ppa_runtime.consumer import Consumer, ConsumerSpec
from ppa_runtime.eventstore import ConcurrencyConflict
from ppa_runtime.relay import OutboxRelay


class SecretNoted(Payload):
    """A private test event: stored with the stream, never published."""

    event_service: ClassVar[str] = "testsvc"
    event_name: ClassVar[str] = "secret_noted"
    event_topic: ClassVar[str | None] = None
    secret: str


def registered(i: int, version: int = 1) -> tuple[str, Envelope]:
    payload = AgencyRegistered(agency_id=f"a{i}", email=f"a{i}@example.jp", profile=AgencyProfile(company=f"社{i}"))
    return IDENTITY_AGENCY, Envelope.wrap(payload, subject=f"a{i}", correlation_id=f"c{i}", aggregate_version=version)


async def drain(sub, want: int, timeout: float = 30) -> list:
    out: list = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(out) < want and loop.time() < deadline:
        out += await sub.fetch(timeout=0.5)
    return out


async def test_append_then_read_a_stream(runtime):
    store = runtime.eventstore("testsvc")
    assert await store.append("agency:a1", 0, [registered(1)]) == 1
    events = await store.read("agency:a1")
    assert [e.type for e in events] == ["jp.ppa.identity.agency_registered.v1"]
    assert events[0].payload().email == "a1@example.jp"
    assert await store.read("agency:none") == []


async def test_append_with_a_stale_expected_version_is_a_conflict(runtime):
    store = runtime.eventstore("testsvc")
    await store.append("agency:a1", 0, [registered(1)])
    with pytest.raises(ConcurrencyConflict):
        await store.append("agency:a1", 0, [registered(1)])
    _, second = registered(1, version=2)
    await store.append("agency:a1", 1, [(IDENTITY_AGENCY, second)])
    _, stale = registered(1, version=2)
    with pytest.raises(ConcurrencyConflict, match="no longer at version 1"):
        await store.append("agency:a1", 1, [(IDENTITY_AGENCY, stale)])
    assert len(await store.read("agency:a1")) == 2


async def test_relay_publishes_each_stored_event_once_and_never_private_ones(runtime):
    store = runtime.eventstore("testsvc")
    for i in range(5):
        topic, env = registered(i)
        secret = Envelope.wrap(SecretNoted(secret="s3cret"), subject=f"a{i}", correlation_id="c", aggregate_version=2)
        await store.append(f"agency:a{i}", 0, [(topic, env), (None, secret)])
    relay = OutboxRelay("testsvc", store, runtime.bus)
    assert await relay.run_once() == 10
    assert await relay.run_once() == 0
    sub = await runtime.bus.subscribe("test-relay", [IDENTITY_AGENCY])
    try:
        got = await drain(sub, 5)
        await asyncio.sleep(0.5)
        got += await sub.fetch(timeout=0.5)
    finally:
        await sub.close()
    assert sorted(r.envelope.subject for r in got) == [f"a{i}" for i in range(5)]
    assert all(r.envelope.type != SecretNoted.event_type() for r in got)
    assert relay.published == 5


async def test_bus_keeps_envelope_and_order_per_key(runtime):
    envs = [registered(1, version=v)[1] for v in range(1, 6)]
    await runtime.bus.publish(IDENTITY_AGENCY, envs)
    sub = await runtime.bus.subscribe("test-order", [IDENTITY_AGENCY])
    try:
        got = await drain(sub, 5)
    finally:
        await sub.close()
    assert [r.envelope.aggregateversion for r in got] == [1, 2, 3, 4, 5]
    assert got[0].envelope == envs[0]


async def test_consumer_group_resumes_after_its_committed_position(runtime):
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(i)[1] for i in range(3)])
    sub = await runtime.bus.subscribe("test-resume", [IDENTITY_AGENCY])
    first = await drain(sub, 3)
    await sub.commit(first)
    await sub.close()
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(9)[1]])
    sub = await runtime.bus.subscribe("test-resume", [IDENTITY_AGENCY])
    try:
        again = await drain(sub, 1)
    finally:
        await sub.close()
    assert [r.envelope.subject for r in again] == ["a9"]


async def test_what_a_consumer_fetched_but_did_not_commit_goes_to_the_next_one(runtime):
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(i)[1] for i in range(10)])
    sub = await runtime.bus.subscribe("test-ahead", [IDENTITY_AGENCY])
    first: list = []
    while len(first) < 4:  # the embedded log reads the next batch ahead meanwhile
        first += await sub.fetch(timeout=0.5, max_records=4 - len(first))
    await sub.commit(first)
    second: list = []
    while not second:  # fetched, never committed; never more than asked for, whatever was read ahead
        second = await sub.fetch(timeout=0.5, max_records=2)
        assert len(second) <= 2
    await sub.close()
    sub = await runtime.bus.subscribe("test-ahead", [IDENTITY_AGENCY])
    try:
        rest = await drain(sub, 6)
    finally:
        await sub.close()
    subjects = [r.envelope.subject for r in first + rest]
    assert sorted(subjects) == sorted(f"a{i}" for i in range(10))  # each once: none lost, none committed twice
    assert {r.envelope.subject for r in second} <= {r.envelope.subject for r in rest}


PICKED = ("$.type", "$.subject", "$.data.agency_id", "$.data.profile.company", "$.data.none", "$.aggregateversion",
          "$.data.profile")


async def test_a_subscription_asked_for_fields_hands_each_record_its_values(runtime):
    """`fields`: the values at those paths come with each record (the embedded log reads them in SQLite), the same
    as picked from the decoded record, in order, across topics, with the record itself intact."""
    other = dlq(IDENTITY_AGENCY)
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(i, version=i + 1)[1] for i in range(7)])
    await runtime.bus.publish(other, [registered(9)[1]])
    sub = await runtime.bus.subscribe("test-picked", [IDENTITY_AGENCY, other], fields=PICKED)
    one = await runtime.bus.subscribe("test-picked-one", [IDENTITY_AGENCY], fields=("$.subject",))
    try:
        records = await drain(sub, 8)
        single = await drain(one, 7)
    finally:
        await sub.close()
        await one.close()
    picked = sorted((r.topic, r.pick(PICKED)[1], r.pick(PICKED)) for r in records)  # Kafka: by partition
    assert [(*p[:5], int(p[5])) for topic, _, p in picked if topic == IDENTITY_AGENCY] == [
        ("jp.ppa.identity.agency_registered.v1", f"a{i}", f"a{i}", f"社{i}", None, i + 1) for i in range(7)]
    assert [p[1:2] + p[3:4] for topic, _, p in picked if topic == other] == [("a9", "社9")]
    for record in records:  # what was picked agrees with the record as decoded and validated
        env = record.envelope
        assert record.pick(PICKED)[:4] == (env.type, env.subject, env.data["agency_id"], env.payload().profile.company)
        assert record.pick(PICKED)[6] == env.data["profile"]  # an object: as decoded
        assert int(record.pick(PICKED)[5]) == env.aggregateversion  # a Kafka header carries it as text
        assert record.pick(("$.data.email", "$.nowhere.deeper")) == (env.data["email"], None)
    assert sorted(r.pick(("$.subject",)) for r in single) == [(f"a{i}",) for i in range(7)]


async def test_records_of_picked_only_types_come_complete_when_asked_for(runtime):
    """A log may hand over records of `picked_only` types with their picked values alone; `complete` gives each
    its JSON again, in order, the others untouched (what a consumer does before applying records one at a time)."""
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(i)[1] for i in range(3)])
    kind = "jp.ppa.identity.agency_registered.v1"
    sub = await runtime.bus.subscribe("test-picked-only", [IDENTITY_AGENCY], fields=("$.type", "$.subject"),
                                      picked_only=frozenset({kind}))
    try:
        records = await drain(sub, 3)
        whole = await sub.complete(records)
    finally:
        await sub.close()
    assert sorted(r.pick(("$.type", "$.subject")) for r in records) == [(kind, f"a{i}") for i in range(3)]
    assert all(r.type == kind for r in records)  # the type is among the picked values
    assert [(r.topic, r.partition, r.offset) for r in whole] == [(r.topic, r.partition, r.offset) for r in records]
    assert sorted(r.envelope.payload().email for r in whole) == [f"a{i}@example.jp" for i in range(3)]
    if runtime.kind == "embedded":  # Kafka hands over whole records anyway
        assert not any(r.whole for r in records)
        with pytest.raises(LookupError, match="picked values only"):
            records[0].envelope


async def run_consumer_until(consumer: Consumer, done, timeout: float = 30) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done() and loop.time() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    stop.set()
    await task


async def test_redelivered_event_is_applied_once(runtime):
    applied: list[str] = []

    async def handler(payload, env):
        applied.append(env.id)

    _, env = registered(1)
    await runtime.bus.publish(IDENTITY_AGENCY, [env, env])  # at-least-once: the same event twice
    inbox = runtime.docstore("testsvc").collection("inbox")
    consumer = Consumer(ConsumerSpec("test-dedupe", [IDENTITY_AGENCY], {env.type: handler}), runtime.bus, inbox)
    await run_consumer_until(consumer, lambda: consumer.applied >= 1)
    assert applied == [env.id]


async def test_failing_handler_retries_then_dead_letters_without_losing_the_event(runtime):
    attempts: list[int] = []

    async def broken(payload, env):
        attempts.append(1)
        raise RuntimeError("projection store unavailable")

    _, env = registered(7)
    await runtime.bus.publish(IDENTITY_AGENCY, [env])
    inbox = runtime.docstore("testsvc").collection("inbox")
    consumer = Consumer(ConsumerSpec("test-dlq", [IDENTITY_AGENCY], {env.type: broken}), runtime.bus, inbox,
                        max_attempts=3, backoff=0.01)
    await run_consumer_until(consumer, lambda: consumer.applied >= 1)
    assert len(attempts) == 3
    sub = await runtime.bus.subscribe("test-dlq-reader", [dlq(IDENTITY_AGENCY)])
    try:
        letters = await drain(sub, 1)
    finally:
        await sub.close()
    assert len(letters) == 1
    letter = letters[0].envelope.payload()
    assert isinstance(letter, DeadLetter)
    assert letter.attempts == 3 and letter.consumer_group == "test-dlq"
    assert "projection store unavailable" in letter.error
    assert Envelope.model_validate(letter.original) == env


async def test_a_record_that_is_no_valid_event_is_dead_lettered_and_the_group_goes_on(runtime):
    applied: set[str] = set()  # handlers are idempotent: a failed batch is applied again record by record

    async def handler(payload, env):
        applied.add(payload.agency_id)

    # not JSON, with a secret-looking value the error must not repeat; then a valid event behind it
    await publish_broken(runtime, IDENTITY_AGENCY, "a8", b'{"agency_id": "a8", "password": "hunter2"',
                         [("ce_type", AgencyRegistered.event_type().encode()), ("ce_subject", b"a8"),
                          ("ce_correlationid", b"c8")])
    _, env = registered(9)
    await runtime.bus.publish(IDENTITY_AGENCY, [env])
    inbox = runtime.docstore("testsvc").collection("inbox")
    for batch in (False, True):  # one record at a time, and a batch handler (which falls back to that)
        group = f"test-invalid-{batch}"

        async def on_batch(records):
            for record in records:
                applied.add(record.data["agency_id"])  # the broken record's data is no object: raises

        applied.clear()
        consumer = Consumer(ConsumerSpec(group, [IDENTITY_AGENCY], {env.type: handler},
                                         on_batch=on_batch if batch else None), runtime.bus, inbox,
                            max_attempts=3, backoff=0.01)
        await run_consumer_until(consumer, lambda: consumer.applied >= 2)
        assert consumer.applied == 2 and applied == {"a9"}
        assert (await runtime.bus.lag(group, [IDENTITY_AGENCY]))[0].lag == 0
    sub = await runtime.bus.subscribe("test-invalid-reader", [dlq(IDENTITY_AGENCY)])
    try:
        letters = [r.envelope.payload() for r in await drain(sub, 2)]
    finally:
        await sub.close()
    assert sorted(letter.consumer_group for letter in letters) == ["test-invalid-False", "test-invalid-True"]
    for letter in letters:
        assert letter.attempts == 1 and letter.error.startswith("ValidationError: ")
        assert "data: Input should be a valid dictionary" in letter.error
        assert "hunter2" not in letter.error
        assert letter.original["subject"] == "a8" and "hunter2" in letter.original["data"]


async def test_a_rebuild_passes_over_a_record_that_is_no_event(runtime):
    from ppa_runtime.rebuild import rebuild_projection

    await publish_broken(runtime, IDENTITY_AGENCY, "a11", b"[1, 2", [("ce_subject", b"a11")])
    _, env = registered(10)
    await runtime.bus.publish(IDENTITY_AGENCY, [env])
    docs = runtime.docstore("testsvc")

    async def handler(payload, env):
        await docs.collection("seen").replace_many([{"_id": payload.agency_id}])

    spec = ConsumerSpec("test-rebuild", [IDENTITY_AGENCY], {env.type: handler}, name="seen", collections=["seen"])
    assert await rebuild_projection(spec, runtime.bus, docs) == 1
    assert await docs.collection("seen").get("a10") == {"_id": "a10"}


async def test_handler_that_recovers_within_its_retries_applies_once(runtime):
    calls: list[int] = []

    async def flaky(payload, env):
        calls.append(1)
        if len(calls) < 2:
            raise ConnectionError("transient")

    _, env = registered(8)
    await runtime.bus.publish(IDENTITY_AGENCY, [env])
    inbox = runtime.docstore("testsvc").collection("inbox")
    consumer = Consumer(ConsumerSpec("test-flaky", [IDENTITY_AGENCY], {env.type: flaky}), runtime.bus, inbox,
                        max_attempts=3, backoff=0.01)
    await run_consumer_until(consumer, lambda: consumer.applied >= 1)
    assert len(calls) == 2
    assert sum(p.end for p in await runtime.bus.lag("test-flaky", [dlq(IDENTITY_AGENCY)])) == 0


async def test_replay_feeds_every_record_from_the_start(runtime):
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(i)[1] for i in range(12)])
    seen: list[str] = []

    async def collect(record):
        seen.append(record.envelope.subject)

    assert await runtime.bus.replay(IDENTITY_AGENCY, collect) == 12
    assert sorted(seen) == sorted(f"a{i}" for i in range(12))


async def test_lag_reports_what_a_group_has_not_yet_committed(runtime):
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(1, version=v)[1] for v in range(1, 5)])  # one key
    sub = await runtime.bus.subscribe("test-lag", [IDENTITY_AGENCY])
    got = await drain(sub, 4)
    await sub.commit(got[:1])
    await sub.close()
    lag = sum(p.lag for p in await runtime.bus.lag("test-lag", [IDENTITY_AGENCY]))
    assert lag == 3


async def test_racing_writers_never_lose_an_acknowledged_append(runtime):
    store = runtime.eventstore("testsvc")
    acknowledged: list[str] = []

    async def writer(name: str) -> None:
        for _ in range(15):
            version = len(await store.read("agency:race"))
            _, env = registered(1, version=version + 1)
            try:
                await store.append("agency:race", version, [(IDENTITY_AGENCY, env)])
                acknowledged.append(env.id)
            except ConcurrencyConflict:
                pass

    await asyncio.gather(*(writer(n) for n in "abc"))
    stored = await store.read("agency:race")
    assert [e.id for e in stored] == acknowledged or sorted(e.id for e in stored) == sorted(acknowledged)
    assert [e.aggregateversion for e in stored] == list(range(1, len(stored) + 1))
    assert len(stored) == len(acknowledged) >= 15


async def test_a_record_without_attributes_is_dead_lettered_with_a_subject_and_its_bytes(runtime):
    import base64

    async def handler(payload, env):
        raise AssertionError("no event to apply")

    await publish_broken(runtime, IDENTITY_AGENCY, "legacy-7", b"\x00not json", [])
    group = "test-no-attributes"
    consumer = Consumer(ConsumerSpec(group, [IDENTITY_AGENCY], {AgencyRegistered.event_type(): handler}), runtime.bus,
                        runtime.docstore("testsvc").collection("inbox"), max_attempts=3, backoff=0.01)
    await run_consumer_until(consumer, lambda: consumer.applied >= 1)
    sub = await runtime.bus.subscribe("test-no-attributes-reader", [dlq(IDENTITY_AGENCY)])
    try:
        (record,) = await drain(sub, 1)
    finally:
        await sub.close()
    letter = record.envelope.payload()
    assert letter.consumer_group == group and letter.error.startswith("ValidationError: ")
    if runtime.kind == "distributed":  # the record as the broker had it: its key is the letter's subject too
        assert record.envelope.subject == letter.original_key == "legacy-7"
        assert base64.b64decode(letter.original_value_base64) == b"\x00not json" and letter.original_headers == []
    else:  # the embedded log keeps structured JSON only: where the record was is its subject
        assert record.envelope.subject == f"{IDENTITY_AGENCY}/0/{letter.original_offset}"
