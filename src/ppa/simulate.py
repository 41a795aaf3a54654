"""`ppa simulate` — a fleet of simulated homes pushing 30-minute cumulative registers through the device API.

Each home has a PV system (3–6 kW, south facing, Tokyo's latitude) and a household load; every 30 minutes
(at :00 and :30 JST) its sub-meter and smart meter report cumulative registers for `pv_generation`,
`grid_export` (売電, PV minus load when positive) and `grid_import` (買電, load minus PV when positive).

The model uses floats internally, but every register is built by adding increments quantized to 0.001 kWh
as `Decimal`, so registers are exact and monotonic and the kWh sent are decimal strings. Everything is
deterministic for a given `--seed`, `--start` and `--days` (a home's readings do not depend on `--homes`).

With anomalies on (the default) each home also resends some batches (duplicates), sends some batches after
later ones (late) and shuffles the readings inside some batches (out of order). The platform derives daily
totals from the set of readings, so the totals are the same as sending everything in order.

`expected_daily` recomputes per-day totals from the raw readings independently of the platform's metering
code, to check what `GET /api/v1/customers/{n}/daily-usage` shows (`--verify` does that after a run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from itertools import pairwise
from typing import Any

import httpx
import orjson

JST = timezone(timedelta(hours=9), "JST")  # Japan has no daylight saving time
CHANNELS = ("pv_generation", "grid_export", "grid_import")
SLOT = timedelta(minutes=30)
SLOTS_PER_DAY = 48
MILLI = Decimal("0.001")
CENTI = Decimal("0.01")
ZERO = Decimal(0)
MAX_BATCH = 10_000
_US = timedelta(microseconds=1)

# Tokyo; JST is the mean solar time of 135°E.
LATITUDE = math.radians(35.68)
LONGITUDE_DEG = 139.69
SOLAR_CONSTANT = 1.353  # kW/m² (the Meinel clear-sky model's value)

# Per month: probabilities of (sunny, partly cloudy, overcast, rain) in Tokyo — dry sunny winters,
# the tsuyu rainy season in June/early July, typhoon/autumn rains in September.
WEATHER = {
    1: (0.62, 0.20, 0.10, 0.08), 2: (0.52, 0.22, 0.14, 0.12), 3: (0.40, 0.25, 0.17, 0.18),
    4: (0.38, 0.27, 0.17, 0.18), 5: (0.40, 0.27, 0.16, 0.17), 6: (0.17, 0.25, 0.25, 0.33),
    7: (0.32, 0.30, 0.18, 0.20), 8: (0.45, 0.30, 0.12, 0.13), 9: (0.27, 0.28, 0.18, 0.27),
    10: (0.33, 0.27, 0.18, 0.22), 11: (0.48, 0.24, 0.14, 0.14), 12: (0.60, 0.20, 0.12, 0.08),
}
# Per state: (range of the day's clear-sky fraction, within-day variability).
STATES = {"sunny": ((0.85, 1.0), 0.04), "partly": ((0.50, 0.85), 0.28),
          "overcast": ((0.18, 0.45), 0.18), "rain": ((0.04, 0.18), 0.25)}


# ----------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class HomeSpec:
    """One simulated home: identity, equipment and habits (drawn from the home's own random stream)."""

    index: int
    customer_number: str
    serial_number: str
    capacity_kw: float
    tilt_deg: float
    performance_ratio: float
    base_kw: float
    morning_kw: float
    morning_peak_h: float
    evening_kw: float
    evening_peak_h: float
    daytime_kw: float
    hvac_kw: float
    initial: dict[str, Decimal]


@dataclass
class HomeReadings:
    """A home's simulated registers: one instant per 30 minutes, a cumulative Decimal per channel."""

    spec: HomeSpec
    times: list[datetime]
    registers: dict[str, list[Decimal]]

    @property
    def count(self) -> int:
        return len(self.times) * len(CHANNELS)

    def readings(self) -> list[dict[str, str]]:
        """Every reading as the device API takes it, in time order."""
        return [reading for i in range(len(self.times)) for reading in self._at(i)]

    def _at(self, i: int) -> list[dict[str, str]]:
        at = self.times[i].isoformat()
        return [{"at": at, "channel": ch, "kwh": f"{self.registers[ch][i]:.3f}"} for ch in CHANNELS]


def customer_number(start: date, index: int) -> str:
    """`11` + the start year + a 4-digit sequence (index from 1)."""
    return f"11{start.year:04d}{index:04d}"


def serial_number(index: int) -> str:
    return f"SIM{index:05d}"


def _q(x: float) -> Decimal:
    """A model quantity as kWh with 3 decimals, never negative."""
    return Decimal(str(round(max(x, 0.0), 3))).quantize(MILLI)


def home_spec(seed: int, start: date, index: int) -> HomeSpec:
    rng = random.Random(f"{seed}:home:{index}")
    return HomeSpec(
        index=index,
        customer_number=customer_number(start, index),
        serial_number=serial_number(index),
        capacity_kw=round(rng.uniform(3.0, 6.0), 1),
        tilt_deg=rng.uniform(15.0, 35.0),
        performance_ratio=rng.uniform(0.76, 0.86),
        base_kw=rng.uniform(0.12, 0.35),
        morning_kw=rng.uniform(0.4, 1.2),
        morning_peak_h=rng.gauss(7.0, 0.5),
        evening_kw=rng.uniform(0.5, 1.4),
        evening_peak_h=rng.gauss(19.3, 0.6),
        daytime_kw=rng.uniform(0.1, 0.5),
        hvac_kw=rng.uniform(0.15, 0.6),
        initial={
            "pv_generation": _q(rng.uniform(0, 40_000)),
            "grid_export": _q(rng.uniform(0, 25_000)),
            "grid_import": _q(rng.uniform(0, 60_000)),
        },
    )


def weather_series(seed: int, start: date, days: int) -> list[tuple[str, float]]:
    """A clear-sky fraction per day, shared by the fleet (one region), with day-to-day persistence."""
    rng = random.Random(f"{seed}:weather:{start.isoformat()}")
    out: list[tuple[str, float]] = []
    state = None
    for d in range(days):
        day = start + timedelta(days=d)
        if state is None or rng.random() > 0.35:  # weather tends to last: keep yesterday's state 35 %
            state = rng.choices(list(STATES), weights=WEATHER[day.month])[0]
        low, high = STATES[state][0]
        out.append((state, rng.uniform(low, high)))
    return out


def _clear_sky_poa(day_of_year: int, clock_h: float, tilt: float) -> float:
    """Clear-sky irradiance (kW/m²) on a south-facing panel at `tilt` radians, JST clock hours."""
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + day_of_year) / 365)
    b = 2 * math.pi * (day_of_year - 81) / 364
    eot_min = 9.87 * math.sin(2 * b) - 7.53 * math.cos(b) - 1.5 * math.sin(b)
    solar_h = clock_h + (LONGITUDE_DEG - 135.0) / 15.0 + eot_min / 60.0
    omega = math.radians(15.0 * (solar_h - 12.0))
    sin_el = math.sin(LATITUDE) * math.sin(decl) + math.cos(LATITUDE) * math.cos(decl) * math.cos(omega)
    if sin_el <= 0.01:
        return 0.0
    el_deg = math.degrees(math.asin(sin_el))
    air_mass = 1.0 / (sin_el + 0.50572 * (el_deg + 6.07995) ** -1.6364)  # Kasten & Young
    beam = SOLAR_CONSTANT * 0.7 ** (air_mass ** 0.678)  # Meinel
    cos_inc = (math.sin(decl) * math.sin(LATITUDE - tilt)
               + math.cos(decl) * math.cos(LATITUDE - tilt) * math.cos(omega))
    diffuse = 0.1 * beam * (1 + math.cos(tilt)) / 2
    return beam * max(cos_inc, 0.0) + diffuse


def _season(day_of_year: int) -> float:
    """+1 in the depth of winter (late January), -1 at the height of summer (late July)."""
    return math.cos(2 * math.pi * (day_of_year - 22) / 365)


def simulate_home(spec: HomeSpec, start: date, days: int, weather: list, seed: int) -> HomeReadings:
    """30-minute registers of one home from `start` 00:00 to `start + days` 00:00 JST (inclusive)."""
    rng = random.Random(f"{seed}:load:{spec.index}:{start.isoformat()}")
    tilt = math.radians(spec.tilt_deg)
    t0 = datetime(start.year, start.month, start.day, tzinfo=JST)
    times = [t0 + SLOT * i for i in range(days * SLOTS_PER_DAY + 1)]
    regs = {ch: [spec.initial[ch]] for ch in CHANNELS}
    pv_reg, exp_reg, imp_reg = (spec.initial[ch] for ch in CHANNELS)
    for d in range(days):
        day = start + timedelta(days=d)
        doy = day.timetuple().tm_yday
        state, sky = weather[d]
        variability = STATES[state][1]
        sky *= rng.gauss(1.0, 0.04)  # a home's own clouds differ a little from the region's
        season = _season(doy)
        heating, cooling = max(season, 0.0) ** 1.3, max(-season, 0.0) ** 2
        summer_derate = 1.0 - 0.08 * max(-season, 0.0)  # hot cells lose efficiency
        weekend = day.weekday() >= 5
        shift = 0.8 if weekend else 0.0  # people sleep in at weekends
        for s in range(SLOTS_PER_DAY):
            # PV: clear-sky irradiance averaged over three points of the half hour, times the weather.
            poa = sum(_clear_sky_poa(doy, s / 2 + m, tilt) for m in (1 / 12, 1 / 4, 5 / 12)) / 3
            clouds = min(max(sky * rng.gauss(1.0, variability), 0.02), 1.08) if poa > 0 else 0.0
            pv_kw = spec.capacity_kw * spec.performance_ratio * summer_derate * poa * clouds
            # Load: base + morning and evening peaks + daytime occupancy + heating/cooling + appliances.
            h = s / 2 + 0.25
            load_kw = (spec.base_kw
                       + spec.morning_kw * math.exp(-0.5 * ((h - spec.morning_peak_h - shift) / 0.9) ** 2)
                       + spec.evening_kw * math.exp(-0.5 * ((h - spec.evening_peak_h) / 1.7) ** 2)
                       + spec.daytime_kw * (1.0 if weekend else 0.4) * math.exp(-0.5 * ((h - 13.0) / 2.5) ** 2))
            night_or_evening = 1.0 if h >= 17 or h < 8 else 0.5
            afternoon = math.exp(-0.5 * ((h - 15.0) / 4.0) ** 2) + 0.4
            load_kw += spec.hvac_kw * (heating * night_or_evening + cooling * afternoon)
            load_kw *= rng.lognormvariate(0.0, 0.18)
            if 6 <= h < 23 and rng.random() < 0.05:  # washing machine, dryer, IH cooking, ...
                load_kw += rng.uniform(0.6, 2.4)
            pv_inc = _q(pv_kw * 0.5)
            load_inc = _q(load_kw * 0.5)
            pv_reg += pv_inc
            if pv_inc > load_inc:
                exp_reg += pv_inc - load_inc
            else:
                imp_reg += load_inc - pv_inc
            regs["pv_generation"].append(pv_reg)
            regs["grid_export"].append(exp_reg)
            regs["grid_import"].append(imp_reg)
    return HomeReadings(spec, times, regs)


def simulate_fleet(*, homes: int, days: int, start: date, seed: int = 1) -> list[HomeReadings]:
    """Every home's readings (what `run` sends, anomalies aside) — for tests and checks."""
    weather = weather_series(seed, start, days)
    return [simulate_home(home_spec(seed, start, i), start, days, weather, seed) for i in range(1, homes + 1)]


# ------------------------------------------------------------------------------------ batches, anomalies


@dataclass(eq=False)  # compared by identity: the plan finds a batch's position with list.index
class Batch:
    readings: list[dict[str, str]]
    first: datetime
    kind: str = "normal"  # normal | shuffled | late | duplicate


@dataclass
class Plan:
    batches: list[Batch]
    unique_readings: int
    duplicate_batches: int = 0
    late_batches: int = 0
    shuffled_batches: int = 0
    expected_duplicates: int = 0


def plan_batches(home: HomeReadings, batch_hours: int, anomalies: bool, seed: int) -> Plan:
    """Split a home's readings into `batch_hours` windows and, with anomalies, disturb the send order."""
    per_batch = batch_hours * 2
    n_times = len(home.times)
    windows = max(1, (n_times - 1 + per_batch - 1) // per_batch)  # the final 00:00 joins the last window
    batches = []
    for w in range(windows):
        lo = w * per_batch
        hi = n_times if w == windows - 1 else lo + per_batch
        batches.append(Batch([r for i in range(lo, hi) for r in home._at(i)], home.times[lo]))
    plan = Plan(batches, unique_readings=home.count)
    if not anomalies:
        return plan
    rng = random.Random(f"{seed}:plan:{home.spec.index}:{batch_hours}")
    n = len(batches)
    # Out of order inside a batch: about 15 % of the batches, at least one.
    for b in rng.sample(batches, max(1, round(0.15 * n))):
        rng.shuffle(b.readings)
        b.kind = "shuffled"
        plan.shuffled_batches += 1
    # Late: about 10 % of the batches (at least one when there are two) go out after 1-3 later ones.
    keys = [float(i) for i in range(n)]
    if n >= 2:
        for i in rng.sample(range(n - 1), max(1, round(0.10 * n))):
            keys[i] = i + rng.uniform(1.5, 3.5)
            batches[i].kind = "late"
            plan.late_batches += 1
    order = [batches[i] for i in sorted(range(n), key=keys.__getitem__)]
    # Duplicates: about 10 % of the batches (at least one) are sent again later, as a device retry would.
    for b in rng.sample(batches, max(1, round(0.10 * n))):
        pos = order.index(b)
        resend = Batch(list(b.readings), b.first, "duplicate")
        order.insert(rng.randint(pos + 1, len(order)), resend)
        plan.duplicate_batches += 1
        plan.expected_duplicates += len(b.readings)
    plan.batches = order
    return plan


# ------------------------------------------------------------------------------ independent recomputation


def _jst_midnight_after(at: datetime) -> datetime:
    day = at.astimezone(JST).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=JST)


def _day_row(days: dict[date, dict], day: date) -> dict:
    return days.setdefault(day, {"generation_kwh": ZERO, "sold_kwh": ZERO, "import_kwh": ZERO, "estimated": False})


def expected_daily(homes_readings: Mapping[Any, Iterable[Mapping[str, str]]]) -> dict[Any, dict[date, dict]]:
    """Per home (the mapping's keys) and JST day: `generation_kwh`, `sold_kwh`, `usage_kwh`, `import_kwh`
    (exact Decimals) and `estimated`, recomputed from raw readings `{"at", "channel", "kwh"}`.

    Per channel the readings are deduplicated by instant and sorted; each interval's energy (the register
    difference; a register going down counts as a reset, 0) belongs to the day it lies in, and one crossing
    JST midnight is split pro rata by time (an interval ending exactly at 00:00 lies in the earlier day, and a
    lone reading at 00:00 makes no day).
    """
    names = {"pv_generation": "generation_kwh", "grid_export": "sold_kwh", "grid_import": "import_kwh"}
    out: dict[Any, dict[date, dict]] = {}
    for key, readings in homes_readings.items():
        series: dict[str, dict[datetime, Decimal]] = defaultdict(dict)
        for r in readings:
            at = datetime.fromisoformat(r["at"])
            if at.tzinfo is None:
                raise ValueError(f"reading without a timezone: {r['at']}")
            kwh = Decimal(r["kwh"])
            points = series[r["channel"]]
            points[at] = max(points.get(at, kwh), kwh)
        days: dict[date, dict] = {}
        row = partial(_day_row, days)
        for channel, points in series.items():
            name = names.get(channel)
            ordered = sorted(points.items())
            if name is None or not ordered:
                continue
            first = ordered[0][0].astimezone(JST)
            if (first.hour, first.minute, first.second, first.microsecond) != (0, 0, 0, 0):  # a reading at 00:00 ends the day before: it opens no day by itself
                row(first.date())
            for (t0, v0), (t1, v1) in pairwise(ordered):
                energy = v1 - v0 if v1 >= v0 else ZERO
                whole = Decimal((t1 - t0) // _US)
                cursor = t0
                while True:
                    day_row = row(cursor.astimezone(JST).date())
                    midnight = _jst_midnight_after(cursor)
                    if cursor == t0 and t1 <= midnight:
                        day_row[name] += energy  # within one day (ending at 00:00 counts as within)
                        break
                    # Crossing midnight: each day gets the share of the interval's time it holds.
                    stop = min(t1, midnight)
                    day_row[name] += energy * Decimal((stop - cursor) // _US) / whole
                    day_row["estimated"] = True
                    if stop == t1:
                        break
                    cursor = midnight
        for values in days.values():
            values["usage_kwh"] = max(values["generation_kwh"] - values["sold_kwh"], ZERO)
        out[key] = dict(sorted(days.items()))
    return out


def present(value: Decimal) -> Decimal:
    """kWh as people see them: 2 decimals, half up."""
    return value.quantize(CENTI, rounding=ROUND_HALF_UP)


def compare_daily(expected: Mapping[date, Mapping], shown: list[Mapping[str, Any]], first: date, last: date,
                  tolerance: Decimal = CENTI) -> list[str]:
    """Differences (as text) between expected days and the daily-usage API's rows, days first..last."""
    got = {row["date"]: row for row in shown}
    problems = []
    day = first
    while day <= last:
        want, have = expected.get(day), got.get(day.isoformat())
        if want is None:
            problems.append(f"{day}: nothing expected")
        elif have is None:
            problems.append(f"{day}: missing")
        else:
            for name in ("generation_kwh", "sold_kwh", "usage_kwh"):
                if abs(Decimal(have[name]) - want[name]) > tolerance:
                    problems.append(f"{day} {name}: shown {have[name]}, expected {present(want[name])}")
        day += timedelta(days=1)
    return problems


# ------------------------------------------------------------------------------------------------- HTTP


class SimulationError(Exception):
    """The simulator cannot go on (bad arguments, refused credentials, a customer it cannot use)."""


@dataclass
class Totals:
    readings_sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    retries: int = 0
    rejections: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    def record(self, serial: str, sent: int, result: dict[str, Any]) -> None:
        """Count one accepted batch of `sent` readings by the device API's answer."""
        self.readings_sent += sent
        self.batches += 1
        self.accepted += result["accepted"]
        self.duplicates += result["duplicates"]
        self.rejected += len(result["rejected"])
        if result["rejected"] and len(self.rejections) < 10:
            self.rejections.extend({"serial": serial, **x} for x in result["rejected"][:10])


async def _token(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", data={"username": email, "password": password})
    if r.status_code != 200:
        raise SimulationError(f"agency login refused ({r.status_code}): {r.text[:200]}")
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def _auth_code(client: httpx.AsyncClient, agency: dict[str, str], spec: HomeSpec, start: date,
                     register: bool, seed: int) -> str:
    """Register the home's customer (or, if it exists, read it) and return its device auth code."""
    if register:
        body = {
            "customer_number": spec.customer_number, "serial_number": spec.serial_number,
            "name": f"模擬 太郎{spec.index}", "name_kana": f"モギ タロウ{spec.index}",
            "contract_start": start.isoformat(), "contract_end": None,
            "base_fee": "980", "sell_unit_price": "16.00", "usage_unit_price": "27.00",
            "notes": f"ppa simulate seed={seed} capacity={spec.capacity_kw}kW", "email": None,
        }
        r = await client.post("/api/v1/customers", json=body, headers=agency)
        if r.status_code == 201:
            return r.json()["auth_code"]
        if r.status_code != 409:
            raise SimulationError(f"registering {spec.customer_number} failed ({r.status_code}): {r.text[:300]}")
    r = await client.get(f"/api/v1/customers/{spec.customer_number}", headers=agency)
    if r.status_code == 404:
        if register:
            raise SimulationError(f"serial {spec.serial_number} is registered to another customer than "
                                  f"{spec.customer_number}")
        raise SimulationError(f"customer {spec.customer_number} is not registered (use --register)")
    if r.status_code != 200:
        raise SimulationError(f"reading {spec.customer_number} failed ({r.status_code}): {r.text[:300]}")
    doc = r.json()
    if doc["serial_number"] != spec.serial_number:
        raise SimulationError(f"customer {spec.customer_number} has serial {doc['serial_number']}, "
                              f"not {spec.serial_number}")
    return doc["auth_code"]


async def _post(client: httpx.AsyncClient, serial: str, code: str, batch: Batch, totals: Totals,
                known: list[bool], auth_wait: float) -> None:
    """Send one batch; 401 is retried for `auth_wait` s until the device was accepted once (the registry
    is filled asynchronously), 429/5xx and connection errors a few times with backoff."""
    body = orjson.dumps({"readings": batch.readings})
    headers = {"Authorization": f"Bearer {code}", "Content-Type": "application/json"}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + auth_wait
    delay, transient = 0.05, 0
    while True:
        try:
            r = await client.post(f"/api/v1/devices/{serial}/readings", content=body, headers=headers)
        except httpx.TransportError as exc:
            r, error = None, f"{type(exc).__name__}: {exc}"
        else:
            error = f"{r.status_code}: {r.text[:300]}"
        if r is not None and r.status_code == 202:
            known[0] = True
            totals.record(serial, len(batch.readings), r.json())
            return
        if r is not None and r.status_code == 401:
            if known[0] or loop.time() > deadline:
                raise SimulationError(f"device {serial}: refused ({error})")
        elif r is None or r.status_code in (429, 502, 503, 504) or r.status_code >= 500:
            transient += 1
            if transient > 5:
                raise SimulationError(f"device {serial}: giving up after {transient} attempts ({error})")
            if r is not None and r.headers.get("retry-after", "").isdigit():
                delay = max(delay, float(r.headers["retry-after"]))
        else:
            raise SimulationError(f"device {serial}: batch refused ({error})")
        totals.retries += 1
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


async def _verify(client: httpx.AsyncClient, agency: dict[str, str], expected: dict[str, dict],
                  start: date, last: date, timeout: float) -> dict[str, Any]:
    """Wait until every customer's daily usage matches `expected` (to 0.01 kWh) or time runs out.

    One customer at a time (the platform derives daily usage asynchronously): few requests while it
    catches up, and none that would slow it down."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    deadline = began + timeout
    problems: dict[str, list[str]] = {}
    for number, days in expected.items():
        while True:
            r = await client.get(f"/api/v1/customers/{number}/daily-usage",
                                 params={"from": start.isoformat(), "to": last.isoformat()}, headers=agency)
            found = compare_daily(days, r.json(), start, last) if r.status_code == 200 else [f"HTTP {r.status_code}"]
            if not found or loop.time() > deadline:
                break
            await asyncio.sleep(0.5)
        if found:
            problems[number] = found
    return {"verified": not problems, "verify_seconds": round(loop.time() - began, 3),
            "mismatched_customers": len(problems),
            "mismatches": {n: p[:5] for n, p in list(problems.items())[:10]}}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Simulate `args.homes` homes over `args.days` days and push them to the platform at `args.url`."""
    start: date = args.start
    days, homes = args.days, args.homes
    end = datetime(start.year, start.month, start.day, tzinfo=JST) + timedelta(days=days)
    if end > datetime.now(JST) + timedelta(minutes=5):
        raise SimulationError(f"the simulated period ends {end.isoformat()}, in the future: the device API "
                              "refuses future readings; choose an earlier --start or fewer --days")
    if not (args.agency_email and args.agency_password):
        raise SimulationError("--agency-email and --agency-password are needed (to register the customers "
                              "or to read their device auth codes)")
    weather = weather_series(args.seed, start, days)
    first = args.first_home
    if first + homes - 1 > 9999:
        raise SimulationError(f"--first-home {first} with --homes {homes} goes past home 9999")
    specs = [home_spec(args.seed, start, i) for i in range(first, first + homes)]
    totals = Totals()
    expected: dict[str, dict] = {}
    planned = {"duplicate_batches": 0, "late_batches": 0, "shuffled_batches": 0, "expected_duplicates": 0}
    unique = 0
    sem = asyncio.Semaphore(args.concurrency)
    limits = httpx.Limits(max_connections=args.concurrency + 2, max_keepalive_connections=args.concurrency + 2)
    async with httpx.AsyncClient(base_url=args.url.rstrip("/"), timeout=120.0, limits=limits) as client:
        agency = await _token(client, args.agency_email, args.agency_password)
        began = time.perf_counter()

        async def code_of(spec: HomeSpec) -> str:
            async with sem:
                return await _auth_code(client, agency, spec, start, args.register, args.seed)

        codes = await asyncio.gather(*(code_of(s) for s in specs))
        register_seconds = time.perf_counter() - began

        async def home(spec: HomeSpec, code: str) -> None:
            nonlocal unique
            async with sem:
                readings = simulate_home(spec, start, days, weather, args.seed)
                plan = plan_batches(readings, args.batch_hours, args.anomalies, args.seed)
                unique += plan.unique_readings
                for name in planned:
                    planned[name] += getattr(plan, name)
                if args.verify:
                    expected[spec.customer_number] = expected_daily({0: readings.readings()})[0]
                del readings
                known = [False]
                try:
                    for batch in plan.batches:
                        await _post(client, spec.serial_number, code, batch, totals, known, args.auth_wait)
                except SimulationError as exc:
                    totals.errors.append(str(exc))

        began = time.perf_counter()
        await asyncio.gather(*(home(s, c) for s, c in zip(specs, codes)))
        seconds = time.perf_counter() - began
        summary: dict[str, Any] = {
            "homes": homes, "days": days, "start": start.isoformat(), "seed": args.seed,
            "readings_sent": totals.readings_sent, "unique_readings": unique,
            "accepted": totals.accepted, "duplicates": totals.duplicates, "rejected": totals.rejected,
            "batches": totals.batches, "retries": totals.retries,
            "anomalies": planned if args.anomalies else None,
            "register_seconds": round(register_seconds, 3),
            "seconds": round(seconds, 3),
            "readings_per_second": round(totals.readings_sent / seconds, 1) if seconds > 0 else None,
            "errors": totals.errors[:20],
        }
        if totals.rejections:
            summary["rejections"] = totals.rejections
        if args.verify and not totals.errors:
            summary.update(await _verify(client, agency, expected, start, start + timedelta(days=days - 1),
                                         args.verify_timeout))
    return summary


# -------------------------------------------------------------------------------------------------- CLI


def _positive(limit: int):
    def parse(text: str) -> int:
        value = int(text)
        if not 1 <= value <= limit:
            raise argparse.ArgumentTypeError(f"must be between 1 and {limit}")
        return value
    return parse


def add_parser(sub) -> None:
    """Add the `simulate` subcommand to an argparse subparsers object."""
    p = sub.add_parser("simulate", help="push simulated homes' 30-minute registers through the device API",
                       description="Generate realistic PV/household registers for N homes and post them "
                                   "through the device API (with duplicates, late and out-of-order batches "
                                   "unless --no-anomalies). Prints a JSON summary.")
    p.add_argument("--homes", type=_positive(9999), default=10, help="number of homes (default 10)")
    p.add_argument("--first-home", type=_positive(9999), default=1,
                   help="number of the first home (default 1): simulators that share a platform send disjoint "
                        "homes, e.g. --first-home 1 and --first-home 101 with --homes 100")
    p.add_argument("--days", type=_positive(3660), default=31, help="number of days (default 31)")
    p.add_argument("--start", type=date.fromisoformat, required=True, help="first day, YYYY-MM-DD (JST)")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the platform (default http://127.0.0.1:8000)")
    p.add_argument("--agency-email", default=os.environ.get("PPA_AGENCY_EMAIL"),
                   help="agency login (default $PPA_AGENCY_EMAIL)")
    p.add_argument("--agency-password", default=os.environ.get("PPA_AGENCY_PASSWORD"),
                   help="agency password (default $PPA_AGENCY_PASSWORD)")
    p.add_argument("--register", action="store_true",
                   help="register the customers first (11+YYYY+sequence, serial SIMnnnnn); existing ones are reused")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1); same seed, same readings")
    p.add_argument("--batch-hours", type=_positive(MAX_BATCH // (2 * len(CHANNELS))), default=24,
                   help="hours of readings per POST (default 24)")
    p.add_argument("--concurrency", type=_positive(1000), default=8, help="homes sending at once (default 8)")
    p.add_argument("--anomalies", action=argparse.BooleanOptionalAction, default=True,
                   help="send some duplicate, late and out-of-order batches (default on)")
    p.add_argument("--verify", action="store_true",
                   help="afterwards, wait until daily usage matches a recomputation from the raw readings")
    p.add_argument("--verify-timeout", type=float, default=900.0,
                   help="seconds to wait for daily usage to catch up when verifying (default 900)")
    p.add_argument("--auth-wait", type=float, default=30.0,
                   help="seconds to retry 401 for a new device (the registry is filled asynchronously)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run the simulation, print the summary as JSON; 0 on success, 1 on errors or a failed verify."""
    try:
        summary = asyncio.run(run(args))
    except SimulationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except httpx.TransportError as exc:
        print(f"error: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 1 if summary["errors"] or summary.get("verified") is False else 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m ppa.simulate")
    add_parser(_parser.add_subparsers(dest="command", required=True))
    sys.exit(main(_parser.parse_args(["simulate", *sys.argv[1:]])))
