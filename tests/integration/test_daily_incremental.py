"""The daily projection reads only the days a batch can change, yet ends exactly where a recomputation from
every stored reading does: any split into batches, any order, repeats, gaps, resets, wraps, a store lost
between publishing and storing; and replaying the readings topic from the start rebuilds the same days."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings, strategies as st
from support import make_settings

from ppa_contracts import Envelope
from ppa_contracts.metering import DailyUsageComputed, DailyUsageRevised, DailyValues
from ppa_contracts.topics import METERING_DAILY_USAGE, METERING_READINGS
from ppa_metering.daily_projection import DAILY, STATES, WITHDRAWN, values_of
from ppa_metering.domain.daily import compute_daily
from ppa_metering.domain.readings import CHANNELS, Reading, row
from ppa_metering.ingest import batch_data
from ppa_metering.service import MeteringService
from ppa_metering.store import chunk_entries, reading
from ppa_runtime.runtime import Runtime

SERIAL, CUSTOMER = "S1", "1120240001"
START = datetime(2024, 1, 10, 20, 0, tzinfo=timezone(timedelta(hours=9)))
NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)
MILLI = Decimal("0.001")


def raw(r: Reading) -> dict:
    out = {"at": r.at.isoformat(), "channel": r.channel, "kwh": str(r.kwh)}
    if r.register_max is not None:
        out["register_max"] = str(r.register_max)
    return out


@st.composite
def channel_history(draw: st.DrawFn, channel: str) -> list[Reading]:
    """Cumulative readings with steps, gaps of up to a few days, resets and wraps at a declared size."""
    size = draw(st.sampled_from([None, 50_000]))
    register_max = Decimal(size) * MILLI if size else None
    value = draw(st.integers(0, (size or 10_000_000) - 1))
    at = START + timedelta(minutes=30 * draw(st.integers(0, 96)))
    out = []
    for _ in range(draw(st.integers(1, 40))):
        out.append(Reading(channel, at, Decimal(value) * MILLI, register_max))
        at += timedelta(minutes=draw(st.sampled_from([30, 30, 30, 30, 90, 600, 1800, 4000])))
        if size is None and draw(st.integers(0, 14)) == 0:
            value = draw(st.integers(0, value))  # a meter reset or replacement
        else:
            value += draw(st.integers(0, 3_000))
            if size is not None and value >= size:
                value -= size
    return out


@st.composite
def deliveries(draw: st.DrawFn) -> list[tuple[list[Reading], bool]]:
    """The readings as batches in any order, some sent again, some whose store was lost."""
    channels = draw(st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=3, unique=True))
    readings = [r for c in channels for r in draw(channel_history(c))]
    order = draw(st.permutations(readings))
    cuts = sorted(draw(st.lists(st.integers(1, max(len(order) - 1, 1)), max_size=8, unique=True)))
    batches = [list(order[a:b]) for a, b in zip([0, *cuts], [*cuts, len(order)]) if order[a:b]]
    batches += draw(st.lists(st.sampled_from(batches), max_size=3))  # a device's retries
    return [(batch, draw(st.integers(0, 5)) == 0) for batch in batches]


def energy_days(days: dict[date, DailyValues]) -> dict[date, DailyValues]:
    """The days as a rebuild has them: a day revised to nothing (its energy withdrawn by a late reset) is left out,
    here and in a recomputation alike (one that computes to the same zeros is no different)."""
    return {day: values for day, values in days.items() if values != WITHDRAWN}


async def stored_days(service: MeteringService) -> dict[date, DailyValues]:
    docs = await service.daily.daily.find({"serial_number": SERIAL})
    return energy_days({date.fromisoformat(d["date"]): DailyValues.model_validate(d["values"]) for d in docs})


async def stored_readings(service: MeteringService) -> list[Reading]:
    return [reading(e) for doc in await service.store.coll.find({"serial_number": SERIAL})
            for e in chunk_entries(doc)]


async def deliver(plan: list[tuple[list[Reading], bool]], fetch_sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runtime = await Runtime.open(make_settings("embedded", Path(tmp)))
        try:
            service = MeteringService(runtime)
            await service.start()
            await service.devices.serials.replace({"_id": SERIAL, "customer": f"a:{CUSTOMER}", "agency_id": "a",
                                                   "customer_number": CUSTOMER, "serial_number": SERIAL,
                                                   "auth_code_hash": "-"})
            sub = await runtime.bus.subscribe("test.daily", [METERING_READINGS])
            sizes = iter(fetch_sizes)
            for batch, store_lost in plan:
                if store_lost:  # published, then the API process died before storing the readings
                    await runtime.bus.publish(METERING_READINGS, [Envelope(
                        source="/ppa/metering", type="jp.ppa.metering.reading_batch_accepted.v1",
                        subject=SERIAL, correlationid="t", data=batch_data(SERIAL, [row(r) for r in batch]))])
                else:
                    await service.ingestion.ingest(SERIAL, [raw(r) for r in batch], now=NOW)
                if records := await sub.fetch(0.01, max_records=next(sizes, 1)):
                    await service.daily.on_batch(records)
                    await sub.commit(records)
            while records := await sub.fetch(0.05, max_records=500):
                await service.daily.on_batch(records)
                await sub.commit(records)
            await sub.close()

            expected = energy_days({day: values_of(usage)
                                    for day, usage in compute_daily(await stored_readings(service)).items()})
            assert await stored_days(service) == expected
            assert {(r.channel, r.at) for r in await stored_readings(service)} == {
                (r.channel, r.at.astimezone(timezone.utc)) for batch, _ in plan for r in batch}

            await check_events(runtime, expected)

            for name in (DAILY, STATES):
                await service.docs.collection(name).drop()
            await service.daily.setup()
            await runtime.bus.replay(METERING_READINGS, lambda record: service.daily.on_batch([record]))
            assert await stored_days(service) == expected
        finally:
            await runtime.close()


async def check_events(runtime: Runtime, expected: dict[date, DailyValues]) -> None:
    """Per day: revisions 1, 2, … each revising the one before; the last one carries the day's totals."""
    sub = await runtime.bus.subscribe("test.events", [METERING_DAILY_USAGE])
    last: dict[date, tuple[int, DailyValues]] = {}
    while records := await sub.fetch(0.05, max_records=1000):
        for record in records:
            event, version = record.envelope.payload(), record.envelope.aggregateversion
            seen = last.get(event.date)
            if isinstance(event, DailyUsageComputed):
                assert seen is None and version == 1
                last[event.date] = (1, event.values)
            else:
                assert isinstance(event, DailyUsageRevised) and seen == (version - 1, event.old)
                last[event.date] = (version, event.new)
    await sub.close()
    assert energy_days({day: values for day, (_, values) in last.items()}) == expected


# a day covered only by the interval over it, withdrawn when a late reading at 00:30 makes that interval a reset
_LATE_RESET = [
    ([Reading("pv_generation", START + timedelta(hours=3), Decimal("100.000"), None),
      Reading("pv_generation", START + timedelta(hours=29), Decimal("126.000"), None)], False),
    ([Reading("pv_generation", START + timedelta(hours=28, minutes=30), Decimal("0.500"), None)], False)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(deliveries(), st.lists(st.integers(1, 4), max_size=12))
@example(_LATE_RESET, [1, 1])
def test_incremental_days_equal_a_full_recomputation_and_a_replay(plan, fetch_sizes) -> None:
    asyncio.run(deliver(plan, fetch_sizes))
