"""Daily usage derivation: worked cases with exact Decimals, revisions and the affected days."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, localcontext

import pytest

from ppa_metering.domain.daily import (DailyUsage, DayChange, affected_days, compute_daily, diff_days,
                                       jst_date, present_kwh)
from ppa_metering.domain.readings import Reading

JST = timezone(timedelta(hours=9))
D = Decimal


def r(channel: str, at: str, kwh: str, register_max: str | None = None) -> Reading:
    """A reading at a JST wall time `YYYY-MM-DD HH:MM`."""
    instant = datetime.fromisoformat(at).replace(tzinfo=JST)
    return Reading(channel, instant, D(kwh), D(register_max) if register_max else None)


PV, SOLD, BUY, CHARGE, DISCHARGE = ("pv_generation", "grid_export", "grid_import", "battery_charge",
                                    "battery_discharge")
JAN15, JAN16, JAN17, JAN18 = (date(2024, 1, d) for d in (15, 16, 17, 18))

CASES = {
    "simple day": (
        [r(PV, "2024-01-16 06:00", "100.000"), r(PV, "2024-01-16 12:00", "105.500"),
         r(PV, "2024-01-16 18:00", "108.250"), r(SOLD, "2024-01-16 06:00", "50.000"),
         r(SOLD, "2024-01-16 12:00", "52.500"), r(SOLD, "2024-01-16 18:00", "53.000")],
        {JAN16: dict(generation_kwh=D("8.250"), sold_kwh=D("3.000"), usage_kwh=D("5.250"),
                     estimated=False, reset=False, usage_clamped=False)},
    ),
    "midnight split pro rata, both days estimated": (
        [r(PV, "2024-01-15 23:40", "100.000"), r(PV, "2024-01-16 00:30", "101.000")],
        {JAN15: dict(generation_kwh=D("0.400"), estimated=True),
         JAN16: dict(generation_kwh=D("0.600"), estimated=True)},
    ),
    "midnight split with a repeating share rounds the first and gives the rest": (
        [r(PV, "2024-01-15 23:50", "100.000"), r(PV, "2024-01-16 00:20", "101.000")],
        {JAN15: dict(generation_kwh=D("0.333"), estimated=True),
         JAN16: dict(generation_kwh=D("0.667"), estimated=True)},
    ),
    "interval ending exactly at midnight belongs to the earlier day": (
        [r(PV, "2024-01-15 23:30", "100.000"), r(PV, "2024-01-16 00:00", "100.800"),
         r(PV, "2024-01-16 00:30", "101.000")],
        {JAN15: dict(generation_kwh=D("0.800"), estimated=False),
         JAN16: dict(generation_kwh=D("0.200"), estimated=False)},
    ),
    "rollover at the declared register_max": (
        [r(PV, "2024-01-16 10:00", "99999.000", "100000"), r(PV, "2024-01-16 11:00", "1.500", "100000"),
         r(PV, "2024-01-16 12:00", "2.000", "100000")],
        {JAN16: dict(generation_kwh=D("3.000"), reset=False)},
    ),
    "rollover declared only by the reading before": (
        [r(PV, "2024-01-16 10:00", "9999.500", "10000"), r(PV, "2024-01-16 11:00", "0.250")],
        {JAN16: dict(generation_kwh=D("0.750"), reset=False)},
    ),
    "reset without register_max starts a new baseline and counts nothing": (
        [r(PV, "2024-01-16 10:00", "5000.000"), r(PV, "2024-01-16 10:30", "5000.700"),
         r(PV, "2024-01-16 11:00", "0.200"), r(PV, "2024-01-16 12:00", "1.200")],
        {JAN16: dict(generation_kwh=D("1.700"), reset=True, estimated=False)},
    ),
    "a register above the declared size cannot wrap: a reset": (
        [r(PV, "2024-01-16 10:00", "12000.000"), r(PV, "2024-01-16 11:00", "5.000", "10000")],
        {JAN16: dict(generation_kwh=D("0.000"), reset=True)},
    ),
    "reset across midnight flags the new reading's day, nothing to estimate": (
        [r(PV, "2024-01-15 22:00", "500.000"), r(PV, "2024-01-16 02:00", "3.000"),
         r(PV, "2024-01-16 03:00", "3.500")],
        {JAN15: dict(generation_kwh=D("0.000"), reset=False, estimated=False),
         JAN16: dict(generation_kwh=D("0.500"), reset=True, estimated=False)},
    ),
    "usage below zero is clamped and flagged": (
        [r(PV, "2024-01-16 06:00", "10.000"), r(PV, "2024-01-16 18:00", "11.000"),
         r(SOLD, "2024-01-16 06:00", "20.000"), r(SOLD, "2024-01-16 18:00", "23.000")],
        {JAN16: dict(generation_kwh=D("1.000"), sold_kwh=D("3.000"), usage_kwh=D("0.000"),
                     usage_clamped=True)},
    ),
    "a gap of several hours inside a day is one exact interval": (
        [r(PV, "2024-01-16 06:00", "100.000"), r(PV, "2024-01-16 14:00", "110.125")],
        {JAN16: dict(generation_kwh=D("10.125"), estimated=False)},
    ),
    "a gap over several days is spread by time over every day it touches": (
        [r(PV, "2024-01-15 18:00", "100.000"), r(PV, "2024-01-18 06:00", "184.000")],
        {JAN15: dict(generation_kwh=D("8.400"), estimated=True),
         JAN16: dict(generation_kwh=D("33.600"), estimated=True),
         JAN17: dict(generation_kwh=D("33.600"), estimated=True),
         JAN18: dict(generation_kwh=D("8.400"), estimated=True)},
    ),
    "a repeated instant keeps its greatest value": (
        [r(PV, "2024-01-16 06:00", "100.000"), r(PV, "2024-01-16 07:00", "101.000"),
         r(PV, "2024-01-16 07:00", "100.500"), r(PV, "2024-01-16 08:00", "102.000")],
        {JAN16: dict(generation_kwh=D("2.000"), reset=False)},
    ),
    "a lower value repeated for an instant neither resets nor counts": (
        [r(PV, "2024-01-16 06:00", "100.000"), r(PV, "2024-01-16 07:00", "99.000"),
         r(PV, "2024-01-16 07:00", "101.000"), r(PV, "2024-01-16 08:00", "102.000"),
         r(PV, "2024-01-17 00:00", "90.000"), r(PV, "2024-01-17 00:00", "103.000"),
         r(PV, "2024-01-17 01:00", "104.000")],
        {JAN16: dict(generation_kwh=D("3.000"), reset=False, estimated=False),
         JAN17: dict(generation_kwh=D("1.000"), reset=False, estimated=False)},
    ),
    "import and battery channels": (
        [r(BUY, "2024-01-16 00:00", "7000.000"), r(BUY, "2024-01-16 12:00", "7004.321"),
         r(CHARGE, "2024-01-16 00:00", "10.000"), r(CHARGE, "2024-01-16 12:00", "12.500"),
         r(DISCHARGE, "2024-01-16 00:00", "20.000"), r(DISCHARGE, "2024-01-16 12:00", "21.250")],
        {JAN16: dict(import_kwh=D("4.321"), battery_charge_kwh=D("2.500"),
                     battery_discharge_kwh=D("1.250"), generation_kwh=D("0.000"))},
    ),
    "a lone reading at 00:00 ends the day before and opens no day of 0 kWh": (
        [r(PV, "2024-01-16 18:00", "100.000"), r(PV, "2024-01-17 00:00", "100.600")],
        {JAN16: dict(generation_kwh=D("0.600"), estimated=False)},
    ),
    "a 00:00 reading's day opens with the first reading inside it": (
        [r(PV, "2024-01-16 18:00", "100.000"), r(PV, "2024-01-17 00:00", "100.600"),
         r(PV, "2024-01-17 00:30", "100.600")],
        {JAN16: dict(generation_kwh=D("0.600")), JAN17: dict(generation_kwh=D("0.000"), estimated=False)},
    ),
    "an interval from a 00:00 reading to the next midnight is the whole day": (
        [r(PV, "2024-01-16 00:00", "100.000"), r(PV, "2024-01-17 00:00", "104.000")],
        {JAN16: dict(generation_kwh=D("4.000"), estimated=False)},
    ),
    "a first reading at 00:00 alone opens no day": (
        [r(PV, "2024-01-17 00:00", "100.000")],
        {},
    ),
    "a reset at 00:00 flags the day it ends, not a day of its own": (
        [r(PV, "2024-01-16 18:00", "500.000"), r(PV, "2024-01-17 00:00", "3.000")],
        {JAN16: dict(generation_kwh=D("0.000"), reset=True)},
    ),
    "a lone first reading opens a day with nothing yet": (
        [r(PV, "2024-01-16 06:00", "100.000")],
        {JAN16: dict(generation_kwh=D("0.000"), estimated=False, reset=False)},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_daily_totals(name: str) -> None:
    readings, expected = CASES[name]
    daily = compute_daily(readings)
    assert list(daily) == sorted(expected)
    for day, fields in expected.items():
        assert daily[day].date == day
        for field, value in fields.items():
            assert getattr(daily[day], field) == value, (day, field)
            if isinstance(value, Decimal):
                assert getattr(daily[day], field).as_tuple().exponent == -3


def test_same_instant_in_any_offset_is_one_reading() -> None:
    jst = r(PV, "2024-01-16 07:00", "101.000")
    utc = Reading(PV, jst.at.astimezone(timezone.utc), D("101.000"))
    base = [r(PV, "2024-01-16 06:00", "100.000"), r(PV, "2024-01-16 08:00", "102.000")]
    assert compute_daily([*base, jst]) == compute_daily([*base, jst, utc])


def test_ignores_the_callers_decimal_context() -> None:
    readings = [r(PV, "2024-01-15 23:50", "123456.789"), r(PV, "2024-01-16 00:20", "123457.789")]
    with localcontext() as context:
        context.prec = 3
        assert compute_daily(readings) == compute_daily(list(readings))
    assert compute_daily(readings)[JAN15].generation_kwh == D("0.333")


def test_only_returns_the_requested_days() -> None:
    readings = [r(PV, "2024-01-15 18:00", "100.000"), r(PV, "2024-01-18 06:00", "184.000")]
    assert list(compute_daily(readings, only={JAN16, JAN17})) == [JAN16, JAN17]


def test_no_readings_no_days() -> None:
    assert compute_daily([]) == {}


def test_late_reading_revises_the_earlier_day() -> None:
    stored = [r(PV, "2024-01-15 22:00", "100.000"), r(PV, "2024-01-16 02:00", "104.000"),
              r(PV, "2024-01-16 12:00", "110.000")]
    late = r(PV, "2024-01-16 00:00", "103.000")
    before, after = compute_daily(stored), compute_daily([*stored, late])
    assert (before[JAN15].generation_kwh, before[JAN16].generation_kwh) == (D("2.000"), D("8.000"))
    assert (after[JAN15].generation_kwh, after[JAN16].generation_kwh) == (D("3.000"), D("7.000"))
    assert not after[JAN15].estimated and not after[JAN16].estimated
    assert diff_days(before, after) == [DayChange(JAN15, before[JAN15], after[JAN15]),
                                        DayChange(JAN16, before[JAN16], after[JAN16])]
    assert affected_days({PV: [x.at for x in stored]}, [late]) == {JAN15, JAN16}


def test_affected_days_span_the_neighbours_of_each_new_reading() -> None:
    times = {PV: [r(PV, "2024-01-15 18:00", "0").at, r(PV, "2024-01-18 06:00", "0").at]}
    assert affected_days(times, [r(PV, "2024-01-17 12:00", "0")]) == {JAN15, JAN16, JAN17, JAN18}
    assert affected_days(times, [r(PV, "2024-01-18 09:00", "0")]) == {JAN18}
    assert affected_days(times, [r(SOLD, "2024-01-16 09:00", "0")]) == {JAN16}
    assert affected_days({}, []) == set()


def test_diff_days_reports_added_removed_and_changed_days_only() -> None:
    day = DailyUsage(JAN16, D("1.000"), D("0.500"), D("0.500"), D("0"), D("0"), D("0"))
    changed = DailyUsage(JAN17, D("2.000"), D("0.500"), D("1.500"), D("0"), D("0"), D("0"))
    old = {JAN16: day, JAN17: changed}
    new = {JAN16: day, JAN17: DailyUsage(JAN17, D("2.000"), D("0.500"), D("1.500"), D("0"), D("0"),
                                         D("0"), estimated=True), JAN18: day}
    assert diff_days(old, new) == [DayChange(JAN17, changed, new[JAN17]), DayChange(JAN18, None, day)]
    assert diff_days(new, {}) == [DayChange(d, new[d], None) for d in (JAN16, JAN17, JAN18)]
    assert diff_days(old, dict(old)) == []


def test_presents_two_decimals_with_usage_that_adds_up() -> None:
    day = DailyUsage(JAN16, D("1.005"), D("0.004"), D("1.001"), D("2.345"), D("0"), D("0.125"))
    shown = day.presented()
    assert (shown.generation_kwh, shown.sold_kwh, shown.usage_kwh) == (D("1.01"), D("0.00"), D("1.01"))
    assert (shown.import_kwh, shown.battery_discharge_kwh) == (D("2.35"), D("0.13"))
    assert str(present_kwh(D("0"))) == "0.00"


def test_jst_date_uses_tokyo_calendar() -> None:
    assert jst_date(datetime(2024, 1, 15, 15, 0, tzinfo=timezone.utc)) == JAN16
    assert jst_date(datetime(2024, 1, 15, 14, 59, tzinfo=timezone.utc)) == JAN15
