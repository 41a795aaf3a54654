"""売電料金・買電料金 held to hand-worked cases: a segment through midnight, a national holiday priced as 土日祝,
an uncovered half hour shown as 未設定, and the yen rounded once per total."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from ppa_contracts.owner import BuyPriceSegment, DayType, ElectricityPrices
from ppa_identity.domain.fees import HOLIDAY, SLOTS, WEEKDAY, by_class, covering, day_class, fees

# 平日 peak 07:00–23:00 at 35.50, 平日 night 23:00–07:00 (through midnight) at 20.25, 土日祝 all day at 25.00
PLAN = ElectricityPrices(sell_price=D("16.00"), buy_segments=(
    BuyPriceSegment(day_type=DayType.WEEKDAY, start="07:00", end="23:00", price=D("35.50")),
    BuyPriceSegment(day_type=DayType.WEEKDAY, start="23:00", end="07:00", price=D("20.25")),
    BuyPriceSegment(day_type=DayType.HOLIDAY, start="00:00", end="00:00", price=D("25.00"))))


def slots(**values: str) -> list[D]:
    """48 half hours, zero but for the named ones (s0 = 00:00–00:30)."""
    out = [D("0.000")] * SLOTS
    for name, value in values.items():
        out[int(name[1:])] = D(value)
    return out


def test_a_segment_crossing_midnight_covers_both_ends_of_the_day():
    cover = covering(PLAN.buy_segments)
    assert cover[WEEKDAY][0] == 1 and cover[WEEKDAY][13] == 1  # 00:00 and 06:30 are night
    assert cover[WEEKDAY][14] == 0 and cover[WEEKDAY][45] == 0  # 07:00 and 22:30 are peak
    assert cover[WEEKDAY][46] == 1 and cover[WEEKDAY][47] == 1  # 23:00 and 23:30 are night again
    assert set(cover[HOLIDAY]) == {2}


def test_a_weekday_is_priced_per_half_hour_by_its_segment():
    # Tuesday 2024-05-07: 1.234 kWh at 06:30 (night), 2.000 at 07:00 (peak), 0.100 at 23:30 (night)
    day = {date(2024, 5, 7): slots(s13="1.234", s14="2.000", s47="0.100")}
    result = fees(PLAN, D("3.300"), by_class(day))
    night, peak = result.segments[1], result.segments[0]
    assert (peak.kwh, peak.yen) == (D("2.000"), D("71"))  # 2.000 × 35.50 = 71.000
    assert (night.kwh, night.yen) == (D("1.334"), D("27"))  # 1.334 × 20.25 = 27.0135 → 27
    assert result.buy_yen == D("98")  # 98.0135 → 98
    assert result.sell_yen == D("52")  # 3.300 × 16.00 = 52.8 → 52 (円未満切り捨て)
    assert result.uncovered_kwh == 0


def test_a_national_holiday_on_a_weekday_is_priced_as_a_weekend_day():
    # 2024-05-03 憲法記念日 is a Friday: its 07:00 import takes the 土日祝 price, not the 平日 peak one
    assert day_class(date(2024, 5, 3)) == HOLIDAY and day_class(date(2024, 5, 2)) == WEEKDAY
    assert day_class(date(2024, 5, 6)) == HOLIDAY  # a substitute holiday (振替休日)
    days = {date(2024, 5, 3): slots(s14="2.000"), date(2024, 5, 2): slots(s14="1.000")}
    result = fees(PLAN, D("0"), by_class(days))
    assert [s.kwh for s in result.segments] == [D("1.000"), D("0.000"), D("2.000")]
    assert result.buy_yen == D("85")  # 35.50 + 2 × 25.00 = 85.50 → 85


def test_an_uncovered_half_hour_is_shown_as_such_and_not_priced():
    only_days = ElectricityPrices(sell_price=None, buy_segments=(
        BuyPriceSegment(day_type=DayType.ALL, start="07:00", end="19:00", price=D("30.00")),))
    result = fees(only_days, D("5.000"), by_class({date(2024, 5, 7): slots(s2="0.700", s20="1.000")}))
    assert result.uncovered_kwh == D("0.700") and result.uncovered_slots == 1
    assert result.buy_yen == D("30") and result.segments[0].kwh == D("1.000")
    assert result.sell_yen is None  # no 売電単価: no 売電料金, not 0
    no_plan = fees(ElectricityPrices(), D("0"), by_class({date(2024, 5, 7): slots(s2="0.700")}))
    assert no_plan.buy_yen is None and no_plan.uncovered_kwh == D("0.700")


def test_yen_are_rounded_once_per_total_not_per_half_hour():
    # 48 half hours of 0.010 kWh at 35.50: each is 0.355 yen (0 if rounded alone), the day is 17.04 → 17
    flat = ElectricityPrices(buy_segments=(
        BuyPriceSegment(day_type=DayType.ALL, start="00:00", end="00:00", price=D("35.50")),))
    result = fees(flat, D("0"), by_class({date(2024, 5, 7): [D("0.010")] * SLOTS}))
    assert result.segments[0].kwh == D("0.480") and result.buy_yen == D("17")
    # subtotals 0.333 × 2 (0.666 → 0 each) and a total from the exact sum: 1.332 → 1
    two = ElectricityPrices(buy_segments=(
        BuyPriceSegment(day_type=DayType.ALL, start="00:00", end="12:00", price=D("2.00")),
        BuyPriceSegment(day_type=DayType.ALL, start="12:00", end="00:00", price=D("2.00"))))
    result = fees(two, D("0"), by_class({date(2024, 5, 7): slots(s0="0.333", s30="0.333")}))
    assert [s.yen for s in result.segments] == [D("0"), D("0")] and result.buy_yen == D("1")
