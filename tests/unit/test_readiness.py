"""Readiness over dependency probes: refused at once, slow only when twice, answered again, one probe a second."""

from __future__ import annotations

import asyncio

import pytest

from ppa_runtime.readiness import Readiness, Unavailable


class Dependency:
    """A server that answers, refuses, or does not answer in time; counts the probes it got."""

    def __init__(self) -> None:
        self.mode = "up"
        self.probes = 0

    async def probe(self) -> None:
        self.probes += 1
        if self.mode == "refused":
            raise ConnectionRefusedError("connection refused")
        if self.mode == "silent":
            await asyncio.sleep(10)


def up_of(states) -> dict[str, bool]:
    return {s.name: s.up for s in states}


async def test_a_refused_connection_is_down_at_once_and_up_again_when_it_answers():
    broker = Dependency()
    readiness = Readiness({"kafka": broker.probe}, timeout=0.05, cache=0)
    first = await readiness.check()
    assert up_of(first) == {"kafka": True}
    broker.mode = "refused"
    down = await readiness.check()
    assert up_of(down) == {"kafka": False} and "refused" in down[0].error
    assert down[0].since >= first[0].since
    with pytest.raises(Unavailable) as refused:
        readiness.refuse_if_down()
    assert refused.value.dependency == "kafka"
    broker.mode = "up"
    again = await readiness.check()
    assert up_of(again) == {"kafka": True} and again[0].error is None and again[0].since >= down[0].since
    readiness.refuse_if_down()


async def test_a_busy_server_stays_up_a_silent_one_goes_down_after_a_while():
    database = Dependency()
    readiness = Readiness({"mongodb": database.probe}, timeout=0.05, cache=0, slow_down_after=0.5)
    await readiness.check()
    database.mode = "silent"
    once = await readiness.check()
    assert up_of(once) == {"mongodb": True} and "no answer" in once[0].error
    database.mode = "up"  # answered again in time: the slow streak ends
    assert up_of(await readiness.check()) == {"mongodb": True}
    database.mode = "silent"

    async def gone():
        return not (await readiness.check())[0].up

    loop = asyncio.get_running_loop()
    silent_from = loop.time()
    while not await gone():
        await asyncio.sleep(0.05)
    assert loop.time() - silent_from >= 0.5  # never before the window, however many probes went unanswered
    assert readiness.known_down() == ["mongodb"]


async def test_probes_within_the_cache_time_and_at_once_share_one():
    broker = Dependency()
    readiness = Readiness({"kafka": broker.probe}, timeout=0.5, cache=60)
    await asyncio.gather(*(readiness.check() for _ in range(50)))
    await readiness.check()
    assert broker.probes == 1


async def test_without_dependencies_nothing_is_probed_or_down():
    readiness = Readiness({})
    assert await readiness.check() == [] and readiness.known_down() == []


async def test_a_waiting_step_is_given_up_when_its_dependency_goes_down_and_not_for_being_slow():
    database = Dependency()
    readiness = Readiness({"mongodb": database.probe}, roles={"store": "mongodb"}, timeout=0.05, cache=0.1)
    await readiness.check()

    async def slow(result: str) -> str:
        await asyncio.sleep(0.6)  # several looks at the probes, every one of them answered
        return result

    assert await readiness.watch("store", slow("done")) == "done"
    never = asyncio.Event()

    async def refuse_soon() -> None:
        await asyncio.sleep(0.3)
        database.mode = "refused"

    refusing = asyncio.create_task(refuse_soon())
    with pytest.raises(Unavailable) as gone:  # the step alone would wait for ever
        await readiness.watch("store", never.wait())
    assert gone.value.dependency == "mongodb"
    await refusing


async def test_a_step_of_an_in_process_store_is_simply_awaited():
    readiness = Readiness({})

    async def step() -> int:
        return 7

    assert await readiness.watch("store", step()) == 7
