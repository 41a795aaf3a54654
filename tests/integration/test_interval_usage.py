"""Metering's half-hour projection on both runtimes: readings through the device API become one document per
device and day (48 half-hours per channel) and a month rollup; a late reading revises both; a redelivered
batch changes nothing."""

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


def half_hourly(day: str, start: int, channel: str, values: list[str]) -> list[dict]:
    """Registers every half hour from slot `start` of a JST day."""
    return [{"at": f"{day}T{(start + i) // 2:02d}:{(start + i) % 2 * 30:02d}:00+09:00", "channel": channel,
             "kwh": v} for i, v in enumerate(values)]


async def test_half_hours_and_the_month_rollup_follow_the_readings_and_a_late_one_revises_them(site):
    device = await customer_with_device(site)
    auth = {"Authorization": f"Bearer {device['code']}"}
    serial = device["serial"]
    # 2024-05-03 is 憲法記念日 (a Friday): its import is filed under 土日祝; 2024-05-07 is a plain Tuesday.
    readings = (half_hourly("2024-05-03", 14, "grid_import", ["100.0", "100.5", "101.5"])
                + half_hourly("2024-05-07", 14, "grid_import", ["101.5", "102.0"])
                + half_hourly("2024-05-07", 24, "pv_generation", ["50.0", "52.0", "55.0"])
                + half_hourly("2024-05-07", 24, "grid_export", ["10.0", "11.0"]))
    pushed = await site.client.post(f"/api/v1/devices/{serial}/readings", json={"readings": readings}, headers=auth)
    assert pushed.status_code == 202 and pushed.json()["accepted"] == len(readings)
    intervals = site.host.service("metering").intervals

    async def day_of_may_7():
        doc = await intervals.day(serial, date(2024, 5, 7))
        return doc if doc and doc["channels"]["pv_generation"][25] == "3.000" else None

    doc = await eventually(day_of_may_7, timeout=60)
    assert doc["channels"]["pv_generation"][24:26] == ["2.000", "3.000"]
    assert doc["channels"]["grid_export"][24] == "1.000" and doc["customer_number"] == device["number"]
    assert doc["channels"]["grid_import"][14] == "0.500"
    holiday = await intervals.day(serial, date(2024, 5, 3))
    assert holiday["channels"]["grid_import"][14:16] == ["0.500", "1.000"]
    assert len(holiday["channels"]["grid_import"]) == 48

    # the import register is flat from 05-03 08:00 to 05-07 07:00: those days hold zeros
    async def month_filed():
        found = await intervals.months_of(serial, ["2024-05"])
        return found[0] if found and found[0]["days"].get("07", {}).get("totals", {}).get("pv_generation") == "5.000" \
            else None

    rollup = await eventually(month_filed, timeout=60)
    assert rollup["days"]["03"]["class"] == "holiday" and rollup["days"]["07"]["class"] == "weekday"
    assert rollup["import_by_class"]["holiday"][14:16] == ["0.500", "1.000"]
    assert rollup["import_by_class"]["weekday"][14] == "0.500"
    assert Decimal(rollup["totals"]["grid_import"]) == Decimal("2.0")
    assert Decimal(rollup["totals"]["pv_generation"]) == Decimal("5.0")

    # a late reading (11:45, before the first pv register) adds a half-hour to the day and to the month
    earlier = [{"at": "2024-05-07T11:30:00+09:00", "channel": "pv_generation", "kwh": "49.0"}]
    assert (await site.client.post(f"/api/v1/devices/{serial}/readings", json={"readings": earlier},
                                   headers=auth)).status_code == 202

    async def month_revised():
        [rollup] = await intervals.months_of(serial, ["2024-05"])
        doc = await intervals.day(serial, date(2024, 5, 7))
        return rollup if Decimal(rollup["totals"]["pv_generation"]) == Decimal("6.0") and doc["channels"][
            "pv_generation"][23] == "1.000" else None

    rollup = await eventually(month_revised, timeout=60)
    assert rollup["days"]["07"]["totals"]["pv_generation"] == "6.000"
    doc = await intervals.day(serial, date(2024, 5, 7))
    assert doc["channels"]["pv_generation"][23:26] == ["1.000", "2.000", "3.000"]
    # the month's days come in one read, in date order, only those stored
    assert [d["date"] for d in await intervals.days(serial, date(2024, 5, 1), date(2024, 5, 31))] == [
        "2024-05-03", "2024-05-04", "2024-05-05", "2024-05-06", "2024-05-07"]


async def test_a_rebuild_gives_the_half_hours_and_rollups_built_live(site):
    from ppa_runtime.rebuild import rebuild_projection

    device = await customer_with_device(site)
    auth = {"Authorization": f"Bearer {device['code']}"}
    batches = [half_hourly("2024-05-03", 14, "grid_import", ["100.0", "100.5", "101.5"]),
               half_hourly("2024-05-02", 30, "grid_import", ["99.0", "99.5"]),  # late: before the first batch
               half_hourly("2024-05-07", 24, "pv_generation", ["50.0", "52.0", "55.0"])]
    for readings in batches:
        assert (await site.client.post(f"/api/v1/devices/{device['serial']}/readings", json={"readings": readings},
                                       headers=auth)).status_code == 202
    metering = site.host.service("metering")
    intervals = metering.intervals

    async def live_done():
        [month] = await intervals.months_of(device["serial"], ["2024-05"]) or [None]
        return month if month and "07" in month["days"] and month["totals"]["grid_import"] == "2.500" else None

    live = await eventually(live_done, timeout=60)
    live_days = await intervals.days(device["serial"], date(2024, 5, 1), date(2024, 5, 31))
    await rebuild_projection(intervals.spec(), site.host.runtime.bus, metering.docs)
    [rebuilt] = await intervals.months_of(device["serial"], ["2024-05"])
    assert rebuilt == live
    assert await intervals.days(device["serial"], date(2024, 5, 1), date(2024, 5, 31)) == live_days


async def test_documents_are_stored_packed_and_a_rollup_written_unpacked_before_is_revised_in_place(site):
    """A day's channels and a rollup's days and sums are kept as JSON text (a MongoDB-protocol server returns a few
    strings instead of ~1,600 values); a rollup stored in the earlier, unpacked form still reads and a new day
    enters its sums; the year's summary (one read for a year view) starts from the months stored before it."""
    from datetime import datetime, timedelta, timezone

    from ppa_metering.domain.intervals import compute_intervals
    from ppa_metering.domain.readings import Reading
    from ppa_metering.interval_projection import rolled_up

    device = await customer_with_device(site)
    serial = device["serial"]
    metering = site.host.service("metering")
    intervals = metering.intervals
    jst = timezone(timedelta(hours=9))

    class Home:
        pass

    Home.serial, Home.customer = serial, await metering.devices.authenticate(serial, device["code"])
    old_day = compute_intervals([Reading("grid_import", datetime(2024, 6, 3, 7, tzinfo=jst), Decimal("10.0"), None),
                                 Reading("grid_import", datetime(2024, 6, 3, 7, 30, tzinfo=jst), Decimal("10.5"),
                                         None)])
    april = compute_intervals([Reading("pv_generation", datetime(2024, 4, 8, 12, tzinfo=jst), Decimal("5.0"), None),
                               Reading("pv_generation", datetime(2024, 4, 8, 12, 30, tzinfo=jst), Decimal("7.5"),
                                       None)])
    await intervals.months.replace_many([rolled_up(f"{serial}|2024-06", Home, None, list(old_day.values())),
                                         rolled_up(f"{serial}|2024-04", Home, None, list(april.values()))])
    # no year summary yet (data from before it): the year is read from its rollups
    assert [(m["month"], m["totals"]["grid_import"], m["totals"]["pv_generation"])
            for m in await intervals.year_of(serial, 2024)] == [("2024-04", "0.000", "2.500"),
                                                                  ("2024-06", "0.500", "0.000")]
    auth = {"Authorization": f"Bearer {device['code']}"}
    readings = half_hourly("2024-06-10", 14, "grid_import", ["200.0", "201.0"])
    assert (await site.client.post(f"/api/v1/devices/{serial}/readings", json={"readings": readings},
                                   headers=auth)).status_code == 202

    async def revised():
        [month] = await intervals.months_of(serial, ["2024-06"]) or [None]
        return month if month and "10" in month["days"] else None

    month = await eventually(revised, timeout=60)
    assert month["days"]["03"]["totals"]["grid_import"] == "0.500"  # the entry written before is kept
    assert month["totals"]["grid_import"] == "1.500" and month["import_by_class"]["weekday"][14] == "1.500"
    stored = await intervals.months.get(f"{serial}|2024-06")
    assert isinstance(stored["d"], str) and isinstance(stored["i"], str) and "days" not in stored
    day = await intervals.daily.get(f"{serial}|2024-06-10")
    assert isinstance(day["h"], str) and "channels" not in day
    assert (await intervals.day(serial, date(2024, 6, 10)))["channels"]["grid_import"][14] == "1.000"
    # the year's summary, made from the stored months when the batch touched 2024, then kept with June's rollup
    summary = await intervals.years.get(f"{serial}|2024")
    assert isinstance(summary["m"], str)
    year = await intervals.year_of(serial, 2024)
    assert [(m["month"], m["totals"]["grid_import"], m["totals"]["pv_generation"]) for m in year] == [
        ("2024-04", "0.000", "2.500"), ("2024-06", "1.500", "0.000")]
    assert year[1]["import_by_class"] == month["import_by_class"] and year[1]["estimated"] is False
    assert year[1]["customer_number"] == device["number"]
