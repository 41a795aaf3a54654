"""Properties of the daily derivation: order-free, conserving energy, never negative."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from ppa_metering.domain.daily import affected_days, compute_daily, diff_days, window
from ppa_metering.domain.intervals import SLOTS, compute_intervals
from ppa_metering.domain.readings import CHANNELS, Reading

START = datetime(2024, 1, 15, 20, 0, tzinfo=timezone(timedelta(hours=9)))
OFFSETS = [timezone.utc, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5, minutes=-30))]
MILLI = Decimal("0.001")
FIELD = {"pv_generation": "generation_kwh", "grid_export": "sold_kwh", "grid_import": "import_kwh",
         "battery_charge": "battery_charge_kwh", "battery_discharge": "battery_discharge_kwh"}
ENERGY_FIELDS = [*FIELD.values(), "usage_kwh"]

# No deadline: a loaded CI machine must not turn a slow example into a failure.
derivation = settings(deadline=None, max_examples=150)


@dataclass(frozen=True)
class History:
    """Readings of one channel, built from known increments, resets and wraps."""

    readings: list[Reading]
    energy: Decimal  # the sum of the increments: what the days must add up to
    drops: Decimal  # how far the register fell at resets
    wraps: int
    register_max: Decimal | None


@st.composite
def histories(draw: st.DrawFn, channel: str, half_hourly: bool = False) -> History:
    size = draw(st.sampled_from([None, 10_000, 1_000_000]))  # register size in thousandths of kWh
    value = draw(st.integers(0, (size or 100_000_000) - 1))
    at = START + timedelta(seconds=draw(st.integers(0, 48)) * 1800 if half_hourly
                           else draw(st.integers(0, 86_400)))
    register_max = Decimal(size) * MILLI if size else None
    readings = [Reading(channel, at, Decimal(value) * MILLI, register_max)]
    energy = drops = wraps = 0
    for _ in range(draw(st.integers(0, 30))):
        at += timedelta(seconds=1800 if half_hourly else draw(st.integers(1, 3 * 86_400)))
        if size is None and value > 0 and draw(st.integers(0, 9)) == 0:
            new = draw(st.integers(0, value - 1))  # a meter reset or replacement
            drops += value - new
            value = new
        else:
            step = draw(st.integers(0, 5_000))
            energy += step
            value += step
            if size is not None and value >= size:
                value -= size
                wraps += 1
        readings.append(Reading(channel, at, Decimal(value) * MILLI, register_max))
    return History(readings, Decimal(energy) * MILLI, Decimal(drops) * MILLI, wraps, register_max)


@st.composite
def devices(draw: st.DrawFn, half_hourly: bool = False) -> dict[str, History]:
    channels = draw(st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=5, unique=True))
    return {channel: draw(histories(channel, half_hourly)) for channel in channels}


def all_readings(device: dict[str, History]) -> list[Reading]:
    return [x for history in device.values() for x in history.readings]


def arbitrary_readings() -> st.SearchStrategy[list[Reading]]:
    """Any valid readings at all, including conflicting values for one instant."""
    def reading(channel: str, seconds: int, kwh: int, size: int | None) -> Reading:
        register_max = Decimal(size) * MILLI if size and kwh < size else None
        return Reading(channel, START + timedelta(seconds=seconds), Decimal(kwh) * MILLI, register_max)
    seconds = st.integers(0, 4 * 24 * 6).map(lambda k: k * 600)  # a 10-minute grid: instants collide
    return st.lists(st.builds(reading, st.sampled_from(CHANNELS), seconds, st.integers(0, 20_000),
                              st.sampled_from([None, 10_000, 20_000])), max_size=60)


def reshuffled(draw: st.DrawFn, readings: list[Reading]) -> list[Reading]:
    """The same readings in another order, some repeated, some written in other UTC offsets."""
    repeats = draw(st.lists(st.sampled_from(readings), max_size=20)) if readings else []
    moved = [x._replace(at=x.at.astimezone(draw(st.sampled_from(OFFSETS)))) for x in readings + repeats]
    return draw(st.permutations(moved))


@derivation
@given(devices(), st.data())
def test_order_repeats_and_losing_values_do_not_change_the_totals(device: dict[str, History],
                                                                  data: st.DataObject) -> None:
    readings = all_readings(device)
    # Lower values sent again for an instant lose the tie-break: they must change nothing.
    cuts = data.draw(st.lists(st.tuples(st.sampled_from(readings), st.integers(1, 9_999)), max_size=10))
    losers = [x._replace(kwh=x.kwh - (cut * MILLI) % x.kwh, register_max=None) for x, cut in cuts if x.kwh]
    assert compute_daily(reshuffled(data.draw, readings + losers)) == compute_daily(readings)


@derivation
@given(arbitrary_readings(), st.data())
def test_any_readings_give_the_same_totals_in_any_order(readings: list[Reading], data: st.DataObject) -> None:
    assert compute_daily(reshuffled(data.draw, readings)) == compute_daily(readings)


@derivation
@given(devices())
def test_days_add_up_to_the_registers_minus_resets_plus_wraps(device: dict[str, History]) -> None:
    daily = compute_daily(all_readings(device))
    for channel, history in device.items():
        total = sum((getattr(day, FIELD[channel]) for day in daily.values()), Decimal(0))
        first, last = history.readings[0].kwh, history.readings[-1].kwh
        assert total == history.energy
        assert total == last - first + history.drops + history.wraps * (history.register_max or 0)
        if history.drops:
            assert any(day.reset for day in daily.values())


@derivation
@given(arbitrary_readings())
def test_days_are_never_negative_and_usage_is_generation_minus_sold(readings: list[Reading]) -> None:
    for day in compute_daily(readings).values():
        assert all(getattr(day, name) >= 0 for name in ENERGY_FIELDS)
        assert day.usage_clamped == (day.generation_kwh < day.sold_kwh)
        assert day.usage_kwh == max(day.generation_kwh - day.sold_kwh, Decimal(0))


@derivation
@given(devices(half_hourly=True))
def test_half_hourly_readings_never_estimate_a_day(device: dict[str, History]) -> None:
    daily = compute_daily(all_readings(device))
    # Japanese smart meters give 30-minute values: every interval ends exactly at midnight.
    assert not any(day.estimated for day in daily.values())
    for channel, history in device.items():
        assert sum(getattr(day, FIELD[channel]) for day in daily.values()) == history.energy


@derivation
@given(devices(), st.data())
def test_late_readings_change_only_affected_days_which_their_window_recomputes(
        device: dict[str, History], data: st.DataObject) -> None:
    readings = all_readings(device)
    late = data.draw(st.lists(st.sampled_from(readings), min_size=1, max_size=8, unique_by=id))
    stored = [x for x in readings if not any(x is y for y in late)]
    before, after = compute_daily(stored), compute_daily(readings)
    times = {channel: sorted(x.at for x in stored if x.channel == channel) for channel in CHANNELS}
    days = affected_days(times, late)
    assert {change.date for change in diff_days(before, after)} <= days
    assert compute_daily(window(readings, days), only=days) == {d: u for d, u in after.items() if d in days}


@derivation
@given(devices(), st.data())
def test_affected_days_run_from_each_new_readings_predecessor_to_its_successor(device: dict[str, History],
                                                                              data: st.DataObject) -> None:
    readings = all_readings(device)
    new = data.draw(st.lists(st.sampled_from(readings), max_size=10))
    fresh = {(x.channel, x.at) for x in new}
    stored = [x for x in data.draw(st.lists(st.sampled_from(readings), max_size=40))
              if (x.channel, x.at) not in fresh]
    times = {channel: sorted({x.at for x in stored if x.channel == channel}) for channel in CHANNELS}
    expected: set[date] = set()
    for reading in new:  # the definition, one reading at a time, among stored and new readings
        own = sorted({x.at for x in stored + new if x.channel == reading.channel})
        earlier = [t for t in own if t < reading.at]
        later = [t for t in own if t > reading.at]
        day, last = jst(earlier[-1] if earlier else reading.at), jst(later[0] if later else reading.at)
        while day <= last:
            expected.add(day)
            day += timedelta(days=1)
    assert affected_days(times, new) == expected


def jst(at: datetime) -> date:
    return at.astimezone(ZoneInfo("Asia/Tokyo")).date()


@derivation
@given(devices())
def test_each_days_half_hours_add_up_to_its_daily_total(device):
    readings = all_readings(device)
    days, halves = compute_daily(readings), compute_intervals(readings)
    assert halves.keys() == days.keys()
    for day, usage in days.items():
        assert all(len(v) == SLOTS and min(v) >= 0 for v in halves[day].channels.values())
        for channel, name in FIELD.items():
            assert halves[day].total(channel) == getattr(usage, name)
