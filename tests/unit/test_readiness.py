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


async def test_one_slow_answer_keeps_it_up_two_take_it_down():
    database = Dependency()
    readiness = Readiness({"mongodb": database.probe}, timeout=0.05, cache=0)
    await readiness.check()
    database.mode = "silent"
    once = await readiness.check()
    assert up_of(once) == {"mongodb": True} and "no answer" in once[0].error
    twice = await readiness.check()
    assert up_of(twice) == {"mongodb": False}
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
