"""A rebuild writes a shadow read model and swaps it in: readers keep the live one until then."""

from __future__ import annotations

import asyncio

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_contracts.topics import IDENTITY_AGENCY
from ppa_runtime.consumer import ConsumerSpec, apply_versioned
from ppa_runtime.rebuild import RebuildProgress, rebuild_projection, shadow_name

COLL = "test_directory"


def registered(i: int) -> Envelope:
    payload = AgencyRegistered(agency_id=f"a{i}", email=f"a{i}@example.jp", profile=AgencyProfile(company=f"社{i}"))
    return Envelope.wrap(payload, subject=f"a{i}", correlation_id=f"c{i}", aggregate_version=1)


def directory_spec(docs, gate: asyncio.Event | None = None, entered: asyncio.Event | None = None) -> ConsumerSpec:
    coll = docs.collection(COLL)

    async def on_registered(event: AgencyRegistered, env: Envelope) -> None:
        if gate is not None and event.agency_id == "a3":
            entered.set()
            await gate.wait()
        await apply_versioned(coll, event.agency_id, env.aggregateversion,
                              {"$set": {"email": event.email, "company": event.profile.company}})

    async def setup() -> None:
        await coll.ensure_index("email", unique=True)

    return ConsumerSpec(group="test-directory", name=COLL, topics=[IDENTITY_AGENCY], collections=[COLL],
                        setup=setup, dedupe=False, handlers={AgencyRegistered.event_type(): on_registered})


async def test_read_model_stays_readable_during_the_rebuild_and_is_swapped_in_complete(runtime):
    docs = runtime.docstore("testsvc")
    live = docs.collection(COLL)
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(i) for i in range(6)])
    # the live model as the consumer built it
    spec = directory_spec(docs)
    await spec.setup()
    for i in range(6):
        env = registered(i)
        await spec.handlers[env.type](env.payload(), env)
    before = await live.find({}, sort=[("_id", 1)])
    await live.insert({"_id": "stale", "email": "stale@example.jp"})  # not in any event: a rebuild drops it

    gate, entered = asyncio.Event(), asyncio.Event()
    state = RebuildProgress(COLL)
    task = asyncio.create_task(rebuild_projection(directory_spec(docs, gate, entered), runtime.bus, docs, state=state))
    await asyncio.wait_for(entered.wait(), 60)
    # mid-rebuild: readers still see the whole live model; the shadow holds what was replayed so far
    assert await live.count() == 7
    assert 0 < await docs.collection(shadow_name(COLL)).count() < 6
    assert state.phase == "replaying" and state.total >= 6
    # an event published during the rebuild, which no live consumer applies here: the catch-up does
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(9)])
    gate.set()
    applied = await asyncio.wait_for(task, 60)

    rebuilt = await live.find({}, sort=[("_id", 1)])
    assert [d["_id"] for d in rebuilt] == [f"a{i}" for i in (0, 1, 2, 3, 4, 5, 9)]
    assert rebuilt[:6] == before
    assert applied == 7 and state.phase == "done" and state.percent == 100
    assert await docs.collection(shadow_name(COLL)).count() == 0
    # the unique index came along with the swap
    from ppa_runtime.docstore import DuplicateKey

    try:
        await live.insert({"_id": "dup", "email": "a1@example.jp"})
        raise AssertionError("the unique email index was lost in the swap")
    except DuplicateKey:
        pass
