"""The daily projection applies a redelivered batch harmlessly, as after a worker's crash (a batch applied but not
committed is read again by the partition's next member): the days stay as they were and nothing is published,
and a day whose event was published but whose document was not stored gets the same event again (same id)."""

from __future__ import annotations

import asyncio
from datetime import date

from ppa_contracts.metering import DailyUsageRevised, DailyValues
from ppa_contracts.topics import METERING_DAILY_USAGE, METERING_READINGS
from ppa_metering.service import MeteringService

SERIAL, CUSTOMER = "RD1", "1120240009"
BATCHES = [  # a day and the next, then a late reading that revises both
    [("2024-03-01T00:00:00+09:00", "100.000"), ("2024-03-01T12:00:00+09:00", "104.000")],
    [("2024-03-02T12:00:00+09:00", "110.000"), ("2024-03-03T00:00:00+09:00", "112.000")],
    [("2024-03-02T00:00:00+09:00", "106.000")],
]


async def read(bus, topic: str, group: str, want: int) -> list:
    sub = await bus.subscribe(group, [topic])
    out: list = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    try:
        while len(out) < want and loop.time() < deadline:
            got = await sub.fetch(0.2, max_records=want - len(out))
            out += got
            await sub.commit(got)
    finally:
        await sub.close()
    return out


async def test_a_redelivered_batch_changes_nothing_and_a_lost_store_republishes_the_same_event(runtime):
    service = MeteringService(runtime)
    await service.start()
    await service.devices.serials.replace({"_id": SERIAL, "customer": f"a:{CUSTOMER}", "agency_id": "a",
                                           "customer_number": CUSTOMER, "serial_number": SERIAL,
                                           "auth_code_hash": "-"})
    for batch in BATCHES:
        result = await service.ingestion.ingest(SERIAL, [{"at": at, "channel": "pv_generation", "kwh": kwh}
                                                         for at, kwh in batch])
        assert result.accepted == len(batch)
    records = await read(runtime.bus, METERING_READINGS, "test.first", len(BATCHES))
    assert len(records) == len(BATCHES)
    for record in records:  # one batch each, committed each: the first member
        await service.daily.on_batch([record])

    async def days() -> dict[str, dict]:
        return {d["date"]: d for d in await service.daily.daily.find({"serial_number": SERIAL})}

    applied = await days()
    assert {"2024-03-01", "2024-03-02"} <= set(applied)
    published = await runtime.bus.ends([METERING_DAILY_USAGE])
    events = await read(runtime.bus, METERING_DAILY_USAGE, "test.events", sum(published.values()))
    revised = [e for e in events if isinstance(e.envelope.payload(), DailyUsageRevised)]
    assert revised  # the late reading revised a day

    # Every batch again, in one fetch, as the next member reads them from an older commit: nothing changes.
    again = await read(runtime.bus, METERING_READINGS, "test.again", len(BATCHES))
    await service.daily.on_batch(again)
    assert await days() == applied
    assert await runtime.bus.ends([METERING_DAILY_USAGE]) == published

    # A crash after a revision was published and before its day was stored: the day is as before the revision.
    last = revised[-1].envelope
    event = last.payload()
    day = event.date.isoformat()
    await service.daily.daily.replace({**applied[day], "values": event.old.model_dump(mode="json"),
                                       "revision": last.aggregateversion - 1})
    once_more = await read(runtime.bus, METERING_READINGS, "test.once-more", len(BATCHES))
    await service.daily.on_batch(once_more)
    assert await days() == applied
    ends = await runtime.bus.ends([METERING_DAILY_USAGE])
    assert sum(ends.values()) == sum(published.values()) + 1
    republished = (await read(runtime.bus, METERING_DAILY_USAGE, "test.events", 1))[0].envelope
    assert (republished.id, republished.aggregateversion) == (last.id, last.aggregateversion)
    assert republished.payload() == event and isinstance(event.new, DailyValues)
    assert date.fromisoformat(day) == event.date
