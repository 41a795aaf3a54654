"""The bus's group-less reading port (tail, ends, offsets by time) and lag timing, on both runtimes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_contracts.topics import IDENTITY_AGENCY, NOTIFY_EMAIL


def registered(i: int, version: int = 1, key: str | None = None) -> Envelope:
    payload = AgencyRegistered(agency_id=f"a{i}", email=f"a{i}@example.jp", profile=AgencyProfile(company=f"社{i}"))
    return Envelope.wrap(payload, subject=key or f"a{i}", correlation_id=f"c{i}", aggregate_version=version)


async def read_all(tail, want: int, timeout: float = 30) -> list:
    out: list = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(out) < want and loop.time() < deadline:
        out += await tail.fetch(timeout=0.5)
    return out


async def test_tail_from_the_end_sees_only_what_is_published_after(runtime):
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(i) for i in range(3)])
    tail = await runtime.bus.tail([IDENTITY_AGENCY, NOTIFY_EMAIL], "end")
    try:
        assert await tail.fetch(timeout=0.5) == []
        await runtime.bus.publish(IDENTITY_AGENCY, [registered(i) for i in range(10, 12)])
        got = await read_all(tail, 2)
        await asyncio.sleep(0.3)
        got += await tail.fetch(timeout=0.5)
    finally:
        await tail.close()
    assert sorted(r.envelope.subject for r in got) == ["a10", "a11"]
    ends = await runtime.bus.ends([IDENTITY_AGENCY])
    assert sum(ends.values()) == 5
    assert all(tail.positions()[p] == end for p, end in ends.items())


async def test_tail_from_positions_reads_each_partition_from_there(runtime):
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(1, version=v, key="same") for v in range(1, 6)])
    ends = await runtime.bus.ends([IDENTITY_AGENCY])
    start = {p: max(end - 2, 0) for p, end in ends.items()}
    tail = await runtime.bus.tail([IDENTITY_AGENCY], start)
    try:
        got = await read_all(tail, 2)
    finally:
        await tail.close()
    assert [r.envelope.aggregateversion for r in got] == [4, 5]


async def test_tail_belongs_to_no_group_and_moves_no_group_position(runtime):
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(i) for i in range(4)])
    tail = await runtime.bus.tail([IDENTITY_AGENCY], "beginning")
    try:
        assert len(await read_all(tail, 4)) == 4
    finally:
        await tail.close()
    assert sum(p.lag for p in await runtime.bus.lag("test-untouched", [IDENTITY_AGENCY])) == 4
    assert IDENTITY_AGENCY in await runtime.bus.topics()


async def test_offsets_at_splits_the_log_by_append_time(runtime):
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(i) for i in range(2)])
    await asyncio.sleep(0.2)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.2)
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(i) for i in range(2, 5)])
    before, at_middle, after = await runtime.bus.offsets_at(
        [IDENTITY_AGENCY], [middle - timedelta(hours=1), middle, datetime.now(UTC) + timedelta(minutes=1)])
    ends = await runtime.bus.ends([IDENTITY_AGENCY])
    assert sum(ends[p] - before[p] for p in ends) == 5
    assert sum(ends[p] - at_middle[p] for p in ends) == 3
    assert after == ends


async def test_lag_says_when_the_group_last_committed_and_since_when_work_waits(runtime):
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(1, version=1, key="k")])
    sub = await runtime.bus.subscribe("test-lag-times", [IDENTITY_AGENCY])
    try:
        got = await read_all(sub, 1)
        await sub.commit(got)
    finally:
        await sub.close()
    committed = datetime.now(UTC)
    await asyncio.sleep(0.2)
    published = datetime.now(UTC)
    await runtime.bus.publish(IDENTITY_AGENCY, [registered(1, version=2, key="k")])
    parts = [p for p in await runtime.bus.lag("test-lag-times", [IDENTITY_AGENCY]) if p.end > 0]
    (part,) = parts
    assert part.lag == 1
    assert part.committed_at is not None and part.committed_at <= committed
    assert part.pending_since is not None and part.pending_since >= published - timedelta(seconds=1)
    assert part.pending_since > part.committed_at
