"""A projection rebuilt by replaying its topic equals the one built live; correlation ids flow into events."""

from __future__ import annotations

import asyncio

from ppa.platform import build_host
from ppa_contracts.identity import AgencyProfile
from ppa_linking.projections import AGENCY_DIRECTORY
from ppa_runtime.context import correlated
from ppa_runtime.rebuild import rebuild_projection


async def wait_until(check, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not reached in time")


async def test_rebuild_gives_the_read_model_built_live(runtime):
    host = build_host(runtime, ["identity", "linking"])
    await host.start()
    try:
        identity, linking = host.service("identity"), host.service("linking")
        for i in range(6):
            with correlated(f"req-{i}"):
                await identity.create_agency(f"r{i}@example.jp", "password123", AgencyProfile(company=f"社{i}"))
        directory = linking.docs.collection(AGENCY_DIRECTORY)

        async def all_there() -> bool:
            return await directory.count() == 6

        await wait_until(all_there)
        live = await directory.find({}, sort=[("email", 1)])
        seen: list[int] = []
        applied = await rebuild_projection(linking.agencies.spec(), runtime.bus, linking.docs,
                                           progress=lambda topic, n: seen.append(n))
        rebuilt = await directory.find({}, sort=[("email", 1)])
        assert applied == 6 and seen[-1] == 6
        assert rebuilt == live
        assert {d["applied_events"] for d in rebuilt} == {1}
    finally:
        await host.stop()


async def test_correlation_id_of_the_command_is_carried_by_its_events(runtime):
    host = build_host(runtime, ["identity"], workers=False)
    await host.start()
    identity = host.service("identity")
    with correlated("req-abc"):
        await identity.create_agency("corr@example.jp", "password123", AgencyProfile(company="相関"))
    events = await identity.events.read("agency:corr@example.jp")
    assert [e.correlationid for e in events] == ["req-abc", "req-abc"]
    assert [e.aggregateversion for e in events] == [1, 2]
    await host.stop()


async def test_a_commit_outside_any_request_has_one_correlation_id(runtime):
    host = build_host(runtime, ["identity"], workers=False)
    await host.start()
    identity = host.service("identity")
    await identity.create_agency("uncorrelated@example.jp", "password123", AgencyProfile(company="相関なし"))
    events = await identity.events.read("agency:uncorrelated@example.jp")
    assert len(events) == 2 and len({e.correlationid for e in events}) == 1 and events[0].correlationid
    await host.stop()
