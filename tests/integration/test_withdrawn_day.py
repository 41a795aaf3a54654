"""A day that had energy only from an interval over it loses it when a late reading makes that interval a register
reset: the daily usage (and so billing) and the owner's half-hours and month sums go to zero for it instead of
keeping the energy counted before; both runtimes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from owner_support import customer_with_device

from support import eventually, portal


@pytest.fixture
async def site(runtime):
    async with portal(runtime, ["identity", "billing", "metering"]) as p:
        yield p


async def test_a_late_reset_takes_the_energy_of_the_day_it_covered_back(site):
    device = await customer_with_device(site)
    serial, auth = device["serial"], {"Authorization": f"Bearer {device['code']}"}

    async def push(*readings: tuple[str, str], duplicates: int = 0) -> None:
        body = {"readings": [{"at": at, "channel": "pv_generation", "kwh": kwh} for at, kwh in readings]}
        r = await site.client.post(f"/api/v1/devices/{serial}/readings", json=body, headers=auth)
        assert r.status_code == 202 and r.json()["accepted"] == len(readings) - duplicates, r.text
        assert r.json()["duplicates"] == duplicates

    url = f"/api/v1/customers/{device['number']}/daily-usage?from=2024-05-10&to=2024-05-12"
    intervals = site.host.service("metering").intervals

    async def days_with(day11: str):
        r = await site.client.get(url, headers=site.tokens["a"])
        got = {d["date"]: d for d in r.json()} if r.status_code == 200 else {}
        return got if got.get("2024-05-11", {}).get("generation_kwh") == day11 and len(got) == 3 else None

    async def month_with(total: str):
        found = await intervals.months_of(serial, ["2024-05"])
        return found[0] if found and Decimal(found[0]["totals"]["pv_generation"]) == Decimal(total) else None

    # 26 hours between two readings: 1 h on the 10th, the whole 11th, 1 h on the 12th
    await push(("2024-05-10T23:00:00+09:00", "100.0"), ("2024-05-12T01:00:00+09:00", "126.0"))
    before = await eventually(lambda: days_with("24.00"), timeout=60)
    assert [before[d]["generation_kwh"] for d in sorted(before)] == ["1.00", "24.00", "1.00"]
    assert before["2024-05-11"]["estimated"] is True
    assert await eventually(lambda: month_with("26"), timeout=60)

    # a new meter at 00:30 on the 12th, reading 0.5: 10th 23:00 → 12th 00:30 is a reset (counts nothing), and the
    # 11th, with no reading of its own, has no energy any more
    await push(("2024-05-12T00:30:00+09:00", "0.5"))
    after = await eventually(lambda: days_with("0.00"), timeout=60)
    assert [after[d]["generation_kwh"] for d in sorted(after)] == ["0.00", "0.00", "125.50"]
    rollup = await eventually(lambda: month_with("125.5"), timeout=60)
    assert rollup["days"]["11"]["totals"]["pv_generation"] == "0.000"
    day11 = await intervals.day(serial, date(2024, 5, 11))
    assert set(day11["channels"]["pv_generation"]) == {"0.000"}

    # sent again: nothing changes
    metering = site.host.service("metering")
    daily_before = await metering.daily.days(site.agency_ids["a"], device["number"], date(2024, 5, 10),
                                             date(2024, 5, 12))
    await push(("2024-05-12T00:30:00+09:00", "0.5"), duplicates=1)  # the device sends it again
    assert await metering.daily.days(site.agency_ids["a"], device["number"], date(2024, 5, 10),
                                     date(2024, 5, 12)) == daily_before
    assert (await month_with("125.5"))["days"] == rollup["days"]
