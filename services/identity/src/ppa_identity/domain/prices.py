"""電力料金情報 rules: decimal unit prices and buy-price segments that cover every day and time once.

A segment covers [start, end) on its day type; end == start means the whole day and an end before
the start runs past midnight. 全日 counts for both 平日 and 土日祝. Coverage is checked per minute
for the two day kinds, and each gap or overlap is named by day type and time range, e.g.
「平日 07:00〜09:00 が未設定です」 (全日 when both day kinds share it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from ppa_contracts.owner import DAY_TYPE_LABELS, BuyPriceSegment, DayType

DAY = 24 * 60
MAX_SEGMENTS = 5
MAX_PRICE = Decimal("9999.99")
_PRICE = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")
_HHMM = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


def parse_price(text: str, label: str) -> tuple[Decimal | None, str | None]:
    """A price in yen from form text (full-width digits allowed): (value, None) or (None, message)."""
    text = unicodedata.normalize("NFKC", text).strip().replace(",", "")
    if not _PRICE.match(text):
        return None, f"{label}は0以上の数値で、小数点以下2桁までで入力してください。"
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None, f"{label}は0以上の数値で、小数点以下2桁までで入力してください。"
    if value > MAX_PRICE:
        return None, f"{label}は{MAX_PRICE}円以下で入力してください。"
    return value, None


def minutes(hhmm: str) -> int:
    """Minutes since midnight of an HH:MM time (H:MM accepted)."""
    m = _HHMM.match(hhmm.strip())
    if not m:
        raise ValueError(f"not a time: {hhmm!r}")
    return int(m.group(1)) * 60 + int(m.group(2))


def hhmm(total: int) -> str:
    """HH:MM of minutes since midnight; the end of the day is 24:00."""
    return f"{total // 60:02d}:{total % 60:02d}"


def covered_minutes(segment: BuyPriceSegment) -> list[int]:
    """The minutes of the day the segment covers."""
    start, end = minutes(segment.start), minutes(segment.end)
    length = (end - start) % DAY or DAY
    return [(start + i) % DAY for i in range(length)]


def _kinds(day_type: DayType) -> tuple[int, ...]:
    return {DayType.ALL: (0, 1), DayType.WEEKDAY: (0,), DayType.HOLIDAY: (1,)}[day_type]


def _runs(labels: list[str | None]) -> list[tuple[str, int, int]]:
    """Runs of equal non-empty labels as (label, start, end); a run through midnight is joined."""
    runs: list[tuple[str, int, int]] = []
    for minute, label in enumerate(labels):
        if label is None:
            continue
        if runs and runs[-1][0] == label and runs[-1][2] == minute:
            runs[-1] = (label, runs[-1][1], minute + 1)
        else:
            runs.append((label, minute, minute + 1))
    if len(runs) > 1 and runs[0][1] == 0 and runs[-1][2] == DAY and runs[0][0] == runs[-1][0]:
        label, start, _ = runs.pop()
        runs[0] = (label, start, runs[0][2])
    return runs


def _label(weekday: bool, holiday: bool) -> str | None:
    if weekday and holiday:
        return DAY_TYPE_LABELS[DayType.ALL]
    if weekday:
        return DAY_TYPE_LABELS[DayType.WEEKDAY]
    if holiday:
        return DAY_TYPE_LABELS[DayType.HOLIDAY]
    return None


def coverage_errors(segments: Sequence[BuyPriceSegment]) -> list[str]:
    """Every gap and overlap of the segments, as messages; empty when they cover each minute exactly once.

    No segments at all is allowed (the buy price is optional).
    """
    if not segments:
        return []
    errors: list[str] = []
    if len(segments) > MAX_SEGMENTS:
        errors.append(f"買電単価の区分は{MAX_SEGMENTS}つまでです。")
    counts = [[0] * DAY, [0] * DAY]
    for segment in segments:
        for kind in _kinds(segment.day_type):
            for minute in covered_minutes(segment):
                counts[kind][minute] += 1
    gaps = [_label(counts[0][m] == 0, counts[1][m] == 0) for m in range(DAY)]
    overlaps = [_label(counts[0][m] > 1, counts[1][m] > 1) for m in range(DAY)]
    for label, start, end in _runs(gaps):
        errors.append(f"{label} {_range(start, end)} が未設定です。")
    for label, start, end in _runs(overlaps):
        errors.append(f"{label} {_range(start, end)} が重複しています。")
    return errors


def _range(start: int, end: int) -> str:
    return f"{hhmm(start)}〜{hhmm(end)}"  # a run joined through midnight has end < start


def time_choices(step: int = 30) -> list[str]:
    """The times a form offers, 00:00 to 23:30."""
    return [hhmm(m) for m in range(0, DAY, step)]
