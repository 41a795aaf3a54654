"""On FerretDB the platform sends update commands small enough not to exhaust the server's connection pool
(docs/mongodb-server.md: one pooled connection per matched statement is held until the command ends); on MongoDB
it sends them as they come."""

from __future__ import annotations

import asyncio

import pytest

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_contracts.topics import IDENTITY_AGENCY
from ppa_runtime.docstore_mongo import FERRETDB_UPDATE_STATEMENTS
from ppa_runtime.metrics import MONGODB_COMMANDS
from ppa_runtime.relay import OutboxRelay
from ppa_runtime.runtime import Runtime


def updates_sent() -> float:
    return MONGODB_COMMANDS.labels("update")._value.get()


async def is_ferretdb(rt: Runtime) -> bool:
    return "ferretdbVersion" in await rt._mongo.admin.command("buildInfo")


async def test_a_bulk_replace_goes_in_chunks_on_ferretdb_and_whole_on_mongodb(distributed_runtime):
    c = distributed_runtime.docstore("testsvc").collection("chunked")
    n = 2 * FERRETDB_UPDATE_STATEMENTS + 1
    await c.insert_many([{"_id": f"d{i:03d}", "v": 0} for i in range(n)])
    before = updates_sent()
    await c.replace_many([{"_id": f"d{i:03d}", "v": 1} for i in range(n)])
    assert updates_sent() - before == (3 if await is_ferretdb(distributed_runtime) else 1)
    assert await c.count({"v": 1}) == n


async def test_a_relay_batch_of_500_commits_is_marked_published(distributed_runtime):
    """The relay marked a batch's commits with one update each, all at once: 500 of them wedged FerretDB."""
    store = distributed_runtime.eventstore("testsvc")
    commits = [(f"agency:a{i}", 0, [(IDENTITY_AGENCY, Envelope.wrap(
        AgencyRegistered(agency_id=f"a{i}", email=f"a{i}@example.jp", profile=AgencyProfile(company=f"社{i}")),
        subject=f"a{i}", correlation_id="c", aggregate_version=1))]) for i in range(500)]
    assert await store.append_many(commits) == set()
    relay = OutboxRelay("testsvc", store, distributed_runtime.bus)
    assert await asyncio.wait_for(relay.run_once(), 180) == 500  # bounded so a regression fails, not hangs
    assert await store.coll.count_documents({"published": True}) == 500
    assert await store.outbox.count_documents({}) == 0


@pytest.mark.parametrize("ferretdb", [True, False], ids=["point-reads", "in-ranges"])
async def test_get_many_finds_the_same_documents_either_way(distributed_runtime, ferretdb):
    """`get_many` reads point by point on FerretDB and by `$in` ranges of 1,000 ids on MongoDB: the same answer."""
    from ppa_runtime.docstore_mongo import IN_IDS, MongoCollection, UpdateGate

    c = distributed_runtime.docstore("testsvc").collection("many")
    await c.insert_many([{"_id": f"d{i:04d}", "n": i} for i in range(IN_IDS + 5)])
    reader = MongoCollection(c.db, "many", UpdateGate() if ferretdb else UpdateGate(None))
    wanted = [f"d{i:04d}" for i in range(0, IN_IDS + 5, 2)] + ["absent", "d0000"]
    found = await reader.get_many(wanted)
    assert sorted(found) == sorted({w for w in wanted if w != "absent"})
    assert all(found[k]["n"] == int(k[1:]) for k in found)
    assert await reader.get_many([]) == {}
