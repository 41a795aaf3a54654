"""Validation of one device batch of cumulative register readings. Pure, no I/O.

Each reading is `{"at", "channel", "kwh", optional "register_max"}` (see API.md). Unknown extra keys
are ignored so devices can send additive fields. kWh are parsed exactly into `Decimal`:
- strings of plain digits (`"1234.567"`), at most 12 before and 6 after the point;
- JSON integers (exact) and `Decimal` (a JSON parser run with `parse_float=Decimal`);
- JSON numbers that arrived as `float` are refused: binary floats already lost the device's digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple, TypeVar

CHANNELS = ("pv_generation", "grid_export", "grid_import", "battery_charge", "battery_discharge")
MAX_BATCH = 10_000
MAX_FUTURE = timedelta(minutes=5)
# A floor against device clocks that never synced; it also keeps date arithmetic far from year 1.
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
# [0-9] not \d: \d also matches full-width and other Unicode digits; bounded so Decimal stays exact.
KWH_TEXT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")
MAX_KWH = Decimal("1e12")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
CHANNEL_INDEX = {channel: index for index, channel in enumerate(CHANNELS)}
_US = timedelta(microseconds=1)
T = TypeVar("T")
_NO_MAX = Decimal(0)  # sorts below every real register_max (which is > 0) in the tie-break

_AT_FORMAT = 'at must be an ISO-8601 date-time with a timezone, e.g. "2024-01-16T00:30:00+09:00"'
_KWH_FORMAT = ('must be a decimal string such as "1234.567" '
               "(digits, at most 12 before and 6 after the point, no exponent)")
_KWH_FLOAT = 'must be a decimal string such as "1234.567", not a JSON number with a fraction'


class Reading(NamedTuple):
    """A validated cumulative register value of one channel at an aware instant (UTC once parsed).

    A named tuple rather than a frozen dataclass: the daily projection builds one per stored reading it reads
    again, and `tuple.__new__(Reading, (...))` costs a fifth of a frozen dataclass's `__init__`."""

    channel: str
    at: datetime
    kwh: Decimal
    register_max: Decimal | None = None


class Row(NamedTuple):
    """A validated reading as the ingestion path stores and publishes it: texts and integers only."""

    channel: int  # index in CHANNELS
    us: int  # µs since the epoch
    kwh: str  # str() of the reading's Decimal
    register_max: str | None
    at: str  # the instant in UTC, ISO-8601 with "Z"


class Rejection(NamedTuple):
    """A refused reading: its index in the batch and an English reason."""

    index: int
    reason: str


@dataclass(frozen=True)
class RowBatch:
    """`BatchResult` in rows."""

    rows: tuple[Row, ...]
    duplicates: int
    rejected: tuple[Rejection, ...]


@dataclass(frozen=True)
class BatchResult:
    """Outcome of one batch: accepted readings in batch order, duplicates counted, rejections."""

    accepted: tuple[Reading, ...]
    duplicates: int
    rejected: tuple[Rejection, ...]


class BatchTooLarge(ValueError):
    """The batch holds more than `MAX_BATCH` readings; the whole request is refused."""


class InvalidReading(ValueError):
    """One reading breaks a rule; `str(error)` is the reason."""


def rank(reading: Reading) -> tuple[Decimal, Decimal]:
    """Tie-break for one (channel, at) sent with different values: the greatest rank wins."""
    return reading.kwh, reading.register_max or _NO_MAX


def validate_batch(readings: Sequence[object], now: datetime) -> BatchResult:
    """Validate a batch against `now`; one reading per (channel, instant) kept, repeats counted."""
    if len(readings) > MAX_BATCH:
        raise BatchTooLarge(f"a batch holds at most {MAX_BATCH} readings, got {len(readings)}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    latest = now + MAX_FUTURE
    kept: dict[tuple[str, datetime], Reading] = {}
    rejected: list[Rejection] = []
    duplicates = 0
    for index, raw in enumerate(readings):
        try:
            reading = parse_reading(raw, latest)
        except InvalidReading as error:
            rejected.append(Rejection(index, str(error)))
            continue
        duplicates += _keep(kept, (reading.channel, reading.at), reading, rank)  # `at` is UTC: a key per instant
    return BatchResult(tuple(kept.values()), duplicates, tuple(rejected))


def _keep(kept: dict, key: tuple, reading: T, rank_of: Callable[[T], tuple[Decimal, Decimal]]) -> bool:
    """Keep `reading` under `key` unless the one kept there ranks higher; True when it is a repeat. The winner is
    the one the daily derivation picks, so a replay of either agrees; it keeps the first one's position (dicts keep
    insertion order)."""
    seen = kept.get(key)
    if seen is None:
        kept[key] = reading
        return False
    if rank_of(reading) > rank_of(seen):
        kept[key] = reading
    return True


def micros(at: datetime) -> int:
    """An aware instant as whole microseconds since the Unix epoch."""
    return (at - EPOCH) // _US


def row(reading: Reading) -> Row:
    """A validated reading as a row."""
    return Row(CHANNEL_INDEX[reading.channel], micros(reading.at), str(reading.kwh),
               None if reading.register_max is None else str(reading.register_max),
               reading.at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"))


def _row_rank(r: Row) -> tuple[Decimal, Decimal]:
    return Decimal(r.kwh), _NO_MAX if r.register_max is None else Decimal(r.register_max)


@lru_cache(maxsize=1 << 12)  # a fleet's devices send the same half-hour instants
def _instant(text: str) -> tuple[int, str] | None:
    """A valid `at` text as (µs, UTC ISO text); None when `parse_at` refuses it."""
    try:
        at = parse_at(text)
    except InvalidReading:
        return None
    return micros(at), at.isoformat().replace("+00:00", "Z")


def validate_rows(readings: Sequence[object], now: datetime) -> RowBatch:
    """`validate_batch` as rows, for the device API: the same readings kept, repeats counted and reasons given
    (a test holds the two equal), without a Decimal or a datetime per reading. The usual reading (an object
    with a valid `at` text, a known channel, plain-digit kWh text and no `register_max`) is checked here, each
    distinct `at` text parsed once (a batch's channels and a fleet's devices share their instants); every other
    reading goes through `parse_reading`, which also words every refusal."""
    if len(readings) > MAX_BATCH:
        raise BatchTooLarge(f"a batch holds at most {MAX_BATCH} readings, got {len(readings)}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    latest = now + MAX_FUTURE
    latest_us = micros(latest)
    instants: dict[str, tuple[int, str] | bool] = {}
    kept: dict[tuple[int, int], Row] = {}
    rejected: list[Rejection] = []
    duplicates = 0
    match, index_of, make = KWH_TEXT.fullmatch, CHANNEL_INDEX, tuple.__new__  # make(Row, …): a NamedTuple's
    # own constructor is a Python function, five times slower
    for index, raw in enumerate(readings):
        r = None
        if type(raw) is dict and type(at := raw.get("at")) is str and type(name := raw.get("channel")) is str:
            instant = instants.get(at)
            if instant is None:
                parsed = _instant(at)
                instant = instants[at] = parsed is not None and parsed[0] <= latest_us and parsed
            channel = index_of.get(name)
            kwh = raw.get("kwh")
            if instant and channel is not None and type(kwh) is str and raw.get("register_max") is None \
                    and match(kwh):
                if kwh[0] == "0" and len(kwh) > 1 and kwh[1] != ".":  # leading zeros: Decimal drops them
                    kwh = str(Decimal(kwh))
                r = make(Row, (channel, instant[0], kwh, None, instant[1]))  # type: ignore[index]
        if r is None:
            try:
                r = row(parse_reading(raw, latest))
            except InvalidReading as error:
                rejected.append(Rejection(index, str(error)))
                continue
        duplicates += _keep(kept, (r.channel, r.us), r, _row_rank)
    return RowBatch(tuple(kept.values()), duplicates, tuple(rejected))


def parse_reading(raw: object, latest: datetime) -> Reading:
    """Parse one reading, refusing instants after `latest`; raises `InvalidReading`."""
    if type(raw) is not dict and not isinstance(raw, Mapping):  # the exact type first: cheaper
        raise InvalidReading("reading must be a JSON object")
    at = parse_at(raw.get("at"))
    if at > latest:
        raise InvalidReading("at is more than 5 minutes in the future")
    channel = raw.get("channel")
    if channel is None:
        raise InvalidReading("channel is required")
    if channel not in CHANNELS:
        raise InvalidReading(f"channel must be one of {', '.join(CHANNELS)}")
    kwh = parse_kwh(raw.get("kwh"), "kwh")
    register_max = raw.get("register_max")
    if register_max is None:
        return Reading(channel, at, kwh)
    register_max = parse_kwh(register_max, "register_max")
    if register_max <= 0:
        raise InvalidReading("register_max must be greater than 0")
    if kwh >= register_max:
        raise InvalidReading("kwh must be below register_max (the register wraps at that value)")
    return Reading(channel, at, kwh, register_max)


def parse_at(value: object) -> datetime:
    """Parse an ISO-8601 date-time that must carry a timezone into UTC; raises `InvalidReading`."""
    if value is None:
        raise InvalidReading("at is required")
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidReading(_AT_FORMAT)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidReading(_AT_FORMAT) from None
    if at.tzinfo is None:  # fromisoformat only ever attaches fixed offsets
        raise InvalidReading("at must include a timezone offset such as +09:00 or Z")
    if at < EARLIEST:
        raise InvalidReading("at is before 2000-01-01, the device clock looks unset")
    # One shared tzinfo: instants then compare without offset arithmetic (daily derivation).
    return at.astimezone(timezone.utc)


def parse_kwh(value: object, field: str) -> Decimal:
    """Parse a non-negative kWh register value exactly; raises `InvalidReading`."""
    if isinstance(value, str):  # the documented form, so checked first
        if KWH_TEXT.fullmatch(value) is None:
            raise InvalidReading(_kwh_text_reason(value, field))
        return Decimal(value)
    if value is None:
        raise InvalidReading(f"{field} is required")
    if isinstance(value, bool):  # bool is an int subclass; true is not 1 kWh
        raise InvalidReading(f"{field} {_KWH_FORMAT}")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidReading(f"{field} must be a finite number")
        number = value
    elif isinstance(value, float):
        raise InvalidReading(f"{field} {_KWH_FLOAT}")
    else:
        raise InvalidReading(f"{field} {_KWH_FORMAT}")
    if number < 0:
        raise InvalidReading(f"{field} must not be negative")
    if number >= MAX_KWH or number.as_tuple().exponent < -6:  # type: ignore[operator]
        raise InvalidReading(f"{field} {_KWH_FORMAT}")
    return number


def _kwh_text_reason(text: str, field: str) -> str:
    """Pick the most helpful reason for a kWh string that is not plain digits."""
    lowered = text.strip().lower().lstrip("+-")
    if lowered in {"nan", "snan", "inf", "infinity"}:
        return f"{field} must be a finite number"
    if text.strip().startswith("-") and len(text) < 32:
        return f"{field} must not be negative"
    return f"{field} {_KWH_FORMAT}"
