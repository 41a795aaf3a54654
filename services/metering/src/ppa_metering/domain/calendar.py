"""Which JST days are 土日祝 (Saturdays, Sundays and Japanese national holidays, substitute ones included).

The holidays come from the maintained `holidays` package, not a hand-typed list: a new law reaches the
platform with a package upgrade (and a rebuild of the month rollups, which file each day as one or the other).
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import holidays

WEEKDAY, HOLIDAY = "weekday", "holiday"


@lru_cache(maxsize=256)
def _national(year: int) -> holidays.HolidayBase:
    return holidays.JP(years=year)


def day_class(day: date) -> str:
    """HOLIDAY for a Saturday, Sunday or national holiday, else WEEKDAY."""
    return HOLIDAY if day.weekday() >= 5 or day in _national(day.year) else WEEKDAY
