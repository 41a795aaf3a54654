"""The MongoDB event store reaches commits by `_id` only, and its outbox holds only what is not published yet:
orphaned entries go once they are old, commits stored unpublished by an earlier version still go out."""

from __future__ import annotations

import time

import pytest

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_contracts.topics import IDENTITY_AGENCY
from ppa_runtime import eventstore_mongo
from ppa_runtime.eventstore import ConcurrencyConflict
from ppa_runtime.metrics import MONGODB_COMMANDS
from ppa_runtime.relay import OutboxRelay


def registered(n: int, version: int = 1) -> tuple[str, Envelope]:
    event = AgencyRegistered(agency_id=f"a{n}", email=f"a{n}@example.jp", profile=AgencyProfile(company=f"社{n}"))
    return IDENTITY_AGENCY, Envelope.wrap(event, subject=f"a{n}", correlation_id="c", aggregate_version=version)


async def test_a_stream_of_multi_event_commits_is_read_and_guarded_by_id(distributed_runtime):
    store = distributed_runtime.eventstore("testsvc")
    await store.append("agency:a1", 0, [registered(1, 1), registered(1, 2), registered(1, 3)])
    await store.append("agency:a1", 3, [registered(1, 4)])
    assert [e.aggregateversion for e in await store.read("agency:a1")] == [1, 2, 3, 4]
    for stale in (0, 3):  # both commit boundaries already taken
        with pytest.raises(ConcurrencyConflict):
            await store.append("agency:a1", stale, [registered(1, stale + 1)])
    with pytest.raises(ConcurrencyConflict):  # not a boundary, not the head
        await store.append("agency:a1", 2, [registered(1, 3)])
    assert len(await store.read("agency:a1")) == 4


async def test_the_outbox_holds_only_what_is_not_published(distributed_runtime):
    store = distributed_runtime.eventstore("testsvc")
    for i in range(3):
        await store.append(f"agency:a{i}", 0, [registered(i)])
    assert await store.outbox.count_documents({}) == 3
    relay = OutboxRelay("testsvc", store, distributed_runtime.bus)
    assert await relay.run_once() == 3
    assert await store.outbox.count_documents({}) == 0
    assert await store.coll.count_documents({"published": True}) == 3
    assert await relay.run_once() == 0


async def test_an_orphaned_entry_goes_once_old_and_a_fresh_one_stays(distributed_runtime):
    store = distributed_runtime.eventstore("testsvc")
    old = time.time() - eventstore_mongo.ORPHAN_SECONDS - 1
    await store.outbox.insert_many([{"_id": "agency:gone:000000000001", "recorded_at": old},
                                    {"_id": "agency:soon:000000000001", "recorded_at": time.time()}])
    assert await store.pending() == []
    assert [e["_id"] async for e in store.outbox.find({})] == ["agency:soon:000000000001"]


async def test_an_append_renews_an_orphaned_entry_of_its_commit(distributed_runtime):
    store = distributed_runtime.eventstore("testsvc")
    old = time.time() - eventstore_mongo.ORPHAN_SECONDS - 1
    await store.outbox.insert_one({"_id": "agency:a7:000000000001", "recorded_at": old})  # a writer died here
    await store.append("agency:a7", 0, [registered(7)])
    pending = await store.pending()
    assert [p.envelope.subject for p in pending] == ["a7"]


async def test_commits_stored_unpublished_without_an_entry_still_go_out(distributed_runtime):
    store = distributed_runtime.eventstore("testsvc")
    await store.append("agency:a8", 0, [registered(8)])
    await store.outbox.delete_many({})  # as an earlier version stored it: a `published: false` flag only
    fresh = distributed_runtime.eventstore("testsvc")  # another process start
    relay = OutboxRelay("testsvc", fresh, distributed_runtime.bus)
    assert await relay.run_once() == 1
    assert await relay.run_once() == 0


def finds_sent() -> float:
    return MONGODB_COMMANDS.labels("find")._value.get()


async def test_a_stream_read_again_costs_one_lookup_and_sees_what_another_process_appended(distributed_runtime):
    store = distributed_runtime.eventstore("testsvc")
    other = eventstore_mongo.MongoEventStore(store.coll.database)  # another process on the same database
    await store.append("agency:a1", 0, [registered(1, 1)])
    await store.append("agency:a1", 1, [registered(1, 2), registered(1, 3)])
    assert [e.aggregateversion for e in await store.read("agency:a1")] == [1, 2, 3]
    before = finds_sent()
    assert [e.aggregateversion for e in await store.read("agency:a1")] == [1, 2, 3]
    assert finds_sent() - before == 1  # the commit after the known ones, absent
    await other.append("agency:a1", 3, [registered(1, 4)])
    assert [e.aggregateversion for e in await store.read("agency:a1")] == [1, 2, 3, 4]
    with pytest.raises(ConcurrencyConflict):  # what this process knew is no longer the head
        await store.append("agency:a1", 3, [registered(1, 4)])
    with pytest.raises(ConcurrencyConflict):  # the other process appended after its own read, unseen here
        await other.append("agency:a1", 3, [registered(1, 4)])
    assert [e.aggregateversion for e in await other.read("agency:a1")] == [1, 2, 3, 4]


async def test_a_long_stream_is_not_kept(distributed_runtime):
    store = distributed_runtime.eventstore("testsvc")
    n = eventstore_mongo.KNOWN_EVENTS + 1
    await store.append("agency:long", 0, [registered(1, v) for v in range(1, n + 1)])
    assert len(await store.read("agency:long")) == n
    assert "agency:long" not in store._known
    await store.append("agency:short", 0, [registered(2, 1)])
    await store.read("agency:short")
    assert "agency:short" in store._known
