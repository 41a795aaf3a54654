"""Half-hour energy: the daily rules (wraps, resets, midnight split) at half-hour grain (test_daily_properties
holds them to the daily totals)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from ppa_metering.domain.intervals import SLOTS, compute_intervals
from ppa_metering.domain.readings import Reading

JST = timezone(timedelta(hours=9))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 4, day, hour, minute, tzinfo=JST)


def test_half_hourly_registers_fill_their_own_slots_and_a_reset_counts_nothing():
    readings = [Reading("grid_import", at(1, 6), Decimal("10.0"), None),
                Reading("grid_import", at(1, 6, 30), Decimal("10.4"), None),
                Reading("grid_import", at(1, 7), Decimal("11.0"), None),
                Reading("grid_import", at(1, 7, 30), Decimal("0.5"), None),  # a new meter: counts 0
                Reading("grid_import", at(1, 8), Decimal("0.75"), None)]
    [day] = compute_intervals(readings).values()
    assert day.channels["grid_import"][12:16] == (Decimal("0.400"), Decimal("0.600"), Decimal("0.000"),
                                                  Decimal("0.250"))
    assert day.reset and not day.estimated
    assert day.total("grid_import") == Decimal("1.250")


def test_an_interval_crossing_midnight_is_shared_by_time_between_the_half_hours_of_both_days():
    readings = [Reading("pv_generation", at(1, 23, 30), Decimal("100"), None),
                Reading("pv_generation", at(2, 0, 30), Decimal("101"), None)]
    days = compute_intervals(readings)
    assert days[date(2024, 4, 1)].channels["pv_generation"][47] == Decimal("0.500")
    assert days[date(2024, 4, 2)].channels["pv_generation"][0] == Decimal("0.500")
    assert days[date(2024, 4, 1)].estimated and days[date(2024, 4, 2)].estimated


def test_a_lone_reading_at_midnight_ends_the_last_half_hour_and_opens_no_day():
    readings = [Reading("pv_generation", at(1, 23, 30), Decimal("100"), None),
                Reading("pv_generation", at(2, 0, 0), Decimal("100.6"), None)]
    days = compute_intervals(readings)
    assert list(days) == [date(2024, 4, 1)]
    assert days[date(2024, 4, 1)].channels["pv_generation"][47] == Decimal("0.600")


def test_a_wrapping_register_counts_through_its_declared_size():
    readings = [Reading("grid_export", at(3, 12), Decimal("9999.5"), Decimal("10000")),
                Reading("grid_export", at(3, 12, 30), Decimal("0.7"), Decimal("10000"))]
    [day] = compute_intervals(readings).values()
    assert day.channels["grid_export"][24] == Decimal("1.200")


def test_a_month_rollup_replaces_a_days_entry_and_its_share_of_the_sums():
    from ppa_metering.interval_projection import rolled_up

    class Device:
        serial = "S1"
        customer = {"agency_id": "a", "customer_number": "1120240001"}

    first = [Reading("grid_import", at(3, 7), Decimal("0.5"), None), Reading("grid_import", at(3, 7, 30),
                                                                             Decimal("1.5"), None),
             Reading("grid_import", at(2, 7), Decimal("0.0"), None), Reading("grid_import", at(2, 7, 30),
                                                                             Decimal("0.5"), None)]
    days = compute_intervals(first)
    month = rolled_up("S1|2024-04", Device, None, list(days.values()))
    # 2024-04-03 is a Wednesday, 04-02 a Tuesday: both 平日; the flat night between them counts 0
    assert month["import_by_class"]["weekday"][14] == "1.500" and month["totals"]["grid_import"] == "1.500"
    again = rolled_up("S1|2024-04", Device, month, [days[date(2024, 4, 3)]])
    assert again == month  # a repeat changes nothing
    revised = compute_intervals([*first, Reading("grid_import", at(3, 8), Decimal("3.5"), None)])
    month = rolled_up("S1|2024-04", Device, month, [revised[date(2024, 4, 3)]])
    assert month["import_by_class"]["weekday"][14:17] == ["1.500", "2.000", "0.000"]
    assert month["totals"]["grid_import"] == "3.500" and month["days"]["03"]["totals"]["grid_import"] == "3.000"
    # 04-29 昭和の日 is filed as 土日祝
    holiday = compute_intervals([Reading("grid_import", at(29, 12), Decimal("0"), None),
                                 Reading("grid_import", at(29, 12, 30), Decimal("0.25"), None)])
    month = rolled_up("S1|2024-04", Device, month, list(holiday.values()))
    assert month["days"]["29"]["class"] == "holiday" and month["import_by_class"]["holiday"][24] == "0.250"
