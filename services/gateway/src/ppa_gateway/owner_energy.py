"""「電力データを見る」's figures from metering's half-hour projection: rows, totals, ratios and fees of a day,
a month or a year of one home. Pure: the pages read the documents, this arranges them.

A day is its 48 half hours (one document), a month its days (one month rollup), a year its months (12 rollups).
Per row and in the totals: 発電量, 売電量, 買電量, 蓄電池 充電/放電, 自家消費 = 発電量 − 売電量 and 消費量 =
発電量 − 売電量 + 買電量 + 放電 − 充電 (neither below 0: a meter error is not negative use). kWh are summed
exactly and shown to 2 decimals, half up. 自家消費率 = 自家消費 / 発電量; 自給率 = (消費量 − 買電量) / 消費量.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property

from ppa_contracts.owner import ElectricityPrices
from ppa_identity.domain.fees import HOLIDAY, SLOTS, WEEKDAY, Fees, day_class, fees

CHANNELS = ("pv_generation", "grid_export", "grid_import", "battery_charge", "battery_discharge")
SERIES = {"generation": "発電量", "export": "売電量", "import": "買電量", "self_consumption": "自家消費",
          "charge": "蓄電池 充電", "discharge": "蓄電池 放電", "consumption": "消費量"}
BATTERY = ("charge", "discharge")
VIEWS = {"day": "日", "month": "月", "year": "年", "range": "期間指定"}
MAX_RANGE_DAYS = 366
_RANGE_SEPARATORS = ("~", "〜", "～", "..")
ZERO = Decimal("0.000")
CENTI = Decimal("0.01")
PERCENT = Decimal("0.1")


class BadPeriod(ValueError):
    """The period asked for is not a date of the view's form (the message says which)."""


@dataclass(frozen=True)
class Period:
    view: str  # day | month | year | range
    first: date
    last: date

    @property
    def key(self) -> str:
        if self.view == "range":
            return f"{self.first.isoformat()}~{self.last.isoformat()}"
        return {"day": self.first.isoformat(), "month": f"{self.first:%Y-%m}", "year": f"{self.first:%Y}"}[self.view]

    @property
    def title(self) -> str:
        if self.view == "range":
            return f"{_jp(self.first)}〜{_jp(self.last)}"
        if self.view == "day":
            return _jp(self.first)
        if self.view == "month":
            return f"{self.first.year}年{self.first.month}月"
        return f"{self.first.year}年"

    def touched_months(self) -> list[str]:
        """The YYYY-MM months the period has days in."""
        out, day = [], self.first.replace(day=1)
        while day <= self.last:
            out.append(f"{day:%Y-%m}")
            day = (day + timedelta(days=32)).replace(day=1)
        return out

    def shifted(self, by: int) -> Period | None:
        """The period before (-1) or after (+1), None outside 2000–2099 (a range moves by its own length)."""
        if self.view == "range":
            step = timedelta(days=((self.last - self.first).days + 1) * by)
            first, last = self.first + step, self.last + step
            return Period("range", first, last) if 2000 <= first.year and last.year <= 2099 else None
        if self.view == "day":
            day = self.first + timedelta(days=by)
            return period("day", day.isoformat()) if 2000 <= day.year <= 2099 else None
        if self.view == "month":
            index = self.first.year * 12 + self.first.month - 1 + by
            year, month = divmod(index, 12)
            return period("month", f"{year:04d}-{month + 1:02d}") if 2000 <= year <= 2099 else None
        year = self.first.year + by
        return period("year", f"{year:04d}") if 2000 <= year <= 2099 else None

    def months(self) -> list[str]:
        return [f"{self.first.year:04d}-{m:02d}" for m in range(1, 13)]


def _jp(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _range(at: str) -> Period:
    text = at.strip()
    for separator in _RANGE_SEPARATORS:
        text = text.replace(separator, "~")
    pieces = [p.strip() for p in text.split("~")]
    if len(pieces) != 2:
        raise BadPeriod("期間は YYYY-MM-DD~YYYY-MM-DD の形式（例: 2024-05-01~2024-05-10）で入力してください。")
    first, last = (period("day", p).first for p in pieces)
    if first > last:
        raise BadPeriod("期間の開始日は終了日以前の日付を入力してください。")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise BadPeriod(f"期間は{MAX_RANGE_DAYS}日以内で入力してください。")
    return Period("range", first, last)


def period(view: str, at: str) -> Period:
    """The period of a view (day | month | year | range) at YYYY-MM-DD, YYYY-MM, YYYY or YYYY-MM-DD~YYYY-MM-DD;
    BadPeriod otherwise."""
    if view not in VIEWS:
        raise BadPeriod("表示の単位は 日・月・年・期間指定 から選択してください。")
    if view == "range":
        return _range(at)
    forms = {"day": ("YYYY-MM-DD", 3), "month": ("YYYY-MM", 2), "year": ("YYYY", 1)}
    form, parts = forms[view]
    pieces = at.strip().replace("/", "-").split("-")
    try:
        if len(pieces) != parts or not all(p.isdigit() for p in pieces):
            raise ValueError(at)
        numbers = [int(p) for p in pieces] + [1] * (3 - parts)
        first = date(*numbers)
    except ValueError as exc:
        raise BadPeriod(f"表示する期間は {form} の形式（例: {_example(view)}）で入力してください。") from exc
    if not 2000 <= first.year <= 2099:
        raise BadPeriod("表示する期間は2000年から2099年までの範囲で入力してください。")
    if view == "day":
        return Period(view, first, first)
    if view == "month":
        return Period(view, first, first.replace(day=calendar.monthrange(first.year, first.month)[1]))
    return Period(view, first, date(first.year, 12, 31))


def _example(view: str) -> str:
    return {"day": "2024-05-07", "month": "2024-05", "year": "2024"}[view]


def series_of(totals: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """The shown series of channel totals (exact)."""
    gen, exp, imp = totals["pv_generation"], totals["grid_export"], totals["grid_import"]
    charge, discharge = totals["battery_charge"], totals["battery_discharge"]
    return {"generation": gen, "export": exp, "import": imp, "self_consumption": max(gen - exp, ZERO),
            "charge": charge, "discharge": discharge,
            "consumption": max(gen - exp + imp + discharge - charge, ZERO)}


def shown(value: Decimal) -> Decimal:
    return value.quantize(CENTI, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Row:
    label: str
    link: str | None  # the period a row opens (a month's day, a year's month)
    values: dict[str, Decimal]  # exact series
    estimated: bool = False

    @cached_property  # the table and the chart read it per series: rounded once per row
    def presented(self) -> dict[str, Decimal]:
        return {k: shown(v) for k, v in self.values.items()}


@dataclass(frozen=True)
class EnergyView:
    period: Period
    rows: list[Row]
    totals: dict[str, Decimal]
    fees: Fees
    battery: bool
    self_consumption_ratio: Decimal | None
    self_sufficiency_ratio: Decimal | None
    estimated: bool = False
    series: list[str] = field(default_factory=list)

    @cached_property
    def presented_totals(self) -> dict[str, Decimal]:
        return {k: shown(v) for k, v in self.totals.items()}


def _ratio(part: Decimal, whole: Decimal) -> Decimal | None:
    if whole <= 0:
        return None
    return min(max(part / whole * 100, Decimal(0)), Decimal(100)).quantize(PERCENT, rounding=ROUND_HALF_UP)


def _view(p: Period, rows: list[Row], channel_totals: dict[str, Decimal], prices: ElectricityPrices,
          imports: Mapping[str, Sequence[Decimal]], battery: bool) -> EnergyView:
    totals = series_of(channel_totals)
    has_battery = battery or bool(totals["charge"] or totals["discharge"])
    series = [s for s in SERIES if has_battery or s not in BATTERY]
    return EnergyView(p, rows, totals, fees(prices, channel_totals["grid_export"], imports), has_battery,
                      _ratio(totals["self_consumption"], totals["generation"]),
                      _ratio(totals["consumption"] - totals["import"], totals["consumption"]),
                      any(r.estimated for r in rows), series)


def _empty() -> dict[str, Decimal]:
    return dict.fromkeys(CHANNELS, ZERO)


def day_view(p: Period, doc: Mapping | None, prices: ElectricityPrices, battery: bool) -> EnergyView:
    """48 half-hour rows (none without data) and the day's fees."""
    rows: list[Row] = []
    totals = _empty()
    imports = {WEEKDAY: [ZERO] * SLOTS, HOLIDAY: [ZERO] * SLOTS}
    if doc is not None:
        channels = {c: [Decimal(v) for v in doc["channels"][c]] for c in CHANNELS}
        for slot in range(SLOTS):
            values = {c: channels[c][slot] for c in CHANNELS}
            minute = slot * 30
            rows.append(Row(f"{minute // 60:02d}:{minute % 60:02d}", None, series_of(values),
                            bool(doc.get("estimated"))))
        totals = {c: sum(channels[c], ZERO) for c in CHANNELS}
        imports[day_class(p.first)] = channels["grid_import"]
    return _view(p, rows, totals, prices, imports, battery)


def month_view(p: Period, rollup: Mapping | None, prices: ElectricityPrices, battery: bool) -> EnergyView:
    """A row per stored day and the month's fees (from the rollup's import per half hour and day class)."""
    rows: list[Row] = []
    totals = _empty()
    imports = {WEEKDAY: [ZERO] * SLOTS, HOLIDAY: [ZERO] * SLOTS}
    if rollup is not None:
        for dd, entry in rollup["days"].items():
            day = p.first.replace(day=int(dd))
            values = {c: Decimal(entry["totals"][c]) for c in CHANNELS}
            label = f"{day.month}/{day.day}（{'月火水木金土日'[day.weekday()]}）"
            rows.append(Row(label, day.isoformat(), series_of(values), bool(entry.get("estimated"))))
        totals = {c: Decimal(rollup["totals"][c]) for c in CHANNELS}
        imports = {k: [Decimal(v) for v in rollup["import_by_class"][k]] for k in (WEEKDAY, HOLIDAY)}
    return _view(p, rows, totals, prices, imports, battery)


def range_view(p: Period, rollups: Sequence[Mapping], prices: ElectricityPrices, battery: bool) -> EnergyView:
    """A row per stored day of the range, from the rollups of the months it touches (their day entries hold each
    day's totals and import per half hour); the range's fees from those days."""
    rows: list[Row] = []
    totals = _empty()
    imports = {WEEKDAY: [ZERO] * SLOTS, HOLIDAY: [ZERO] * SLOTS}
    for rollup in rollups:
        year, month = int(rollup["month"][:4]), int(rollup["month"][5:7])
        for dd, entry in rollup["days"].items():
            day = date(year, month, int(dd))
            if not p.first <= day <= p.last:
                continue
            values = {c: Decimal(entry["totals"][c]) for c in CHANNELS}
            rows.append(Row(f"{day.year}/{day.month}/{day.day}（{'月火水木金土日'[day.weekday()]}）", day.isoformat(),
                            series_of(values), bool(entry.get("estimated"))))
            totals = {c: totals[c] + values[c] for c in CHANNELS}
            imports[entry["class"]] = [a + Decimal(b) for a, b in zip(imports[entry["class"]], entry["import"],
                                                                       strict=True)]
    return _view(p, rows, totals, prices, imports, battery)


def year_view(p: Period, months: Sequence[Mapping], prices: ElectricityPrices, battery: bool) -> EnergyView:
    """A row per month with data, from the months' summaries (metering's `month_summary`); the year's fees from
    their sums."""
    rows: list[Row] = []
    totals = _empty()
    imports = {WEEKDAY: [ZERO] * SLOTS, HOLIDAY: [ZERO] * SLOTS}
    for rollup in months:
        values = {c: Decimal(rollup["totals"][c]) for c in CHANNELS}
        month = int(rollup["month"][5:7])
        rows.append(Row(f"{month}月", rollup["month"], series_of(values), bool(rollup["estimated"])))
        totals = {c: totals[c] + values[c] for c in CHANNELS}
        for k in (WEEKDAY, HOLIDAY):
            imports[k] = [a + Decimal(b) for a, b in zip(imports[k], rollup["import_by_class"][k], strict=True)]
    return _view(p, rows, totals, prices, imports, battery)
