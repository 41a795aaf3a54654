"""bench/ingest — device readings per second from HTTP accept to daily totals visible, per runtime.

Starts `ppa up` in a subprocess (its own data directory and topic/database namespace), registers simulated
homes and posts their 30-minute registers through the device API with `ppa simulate`'s generator, then waits
until the daily-usage consumer group has applied every published batch (its committed position reaches the
end of the readings topic): from then on every day's totals are visible. Prints one JSON document.

    uv run python bench/ingest.py --runtime embedded --readings 1000000
    uv run python bench/ingest.py --runtime distributed --readings 100000   # KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI
    uv run python bench/ingest.py --runtime embedded --flat --readings 1000000 --homes 20

`--flat` sends the fleet's history in chronological slices and waits after each one, so the cost per reading
of a slice can be compared while every device's history grows (10^5 → 10^6 → 10^7 readings).
Wall-clock figures depend on what else runs on the machine; the server's CPU seconds per reading do less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import aiohttp
import httpx
import orjson

from ppa.simulate import (CHANNELS, Batch, HomeReadings, HomeSpec, Totals, _auth_code, compare_daily,
                          expected_daily, home_spec, plan_batches, simulate_home, weather_series)
from ppa_contracts.topics import METERING_READINGS
from processes import TOPOLOGIES, Platform
from ppa_runtime.runtime import Runtime

GROUP = "metering.daily-usage"
EMAIL, PASSWORD = "bench@example.jp", "benchpassword1"
READINGS_PER_DAY = 48 * len(CHANNELS)


@dataclass
class Work:
    spec: HomeSpec
    home: HomeReadings
    batches: list[Batch]
    boundary: list[dict[str, str]]


class Fleet:
    """Simulated homes whose registers continue from one slice of days to the next."""

    def __init__(self, homes: int, start: date, seed: int, first: int = 1) -> None:
        self.specs = [home_spec(seed, start, i) for i in range(first, first + homes)]
        self.seed = seed
        self.start = start
        self.day = 0

    def next_slice(self, days: int, batch_hours: int, anomalies: bool) -> list[Work]:
        """The next `days` days of every home: readings without the instant the last slice ended on (that
        one, sent already, is returned apart: an independent recomputation needs it) and their batches."""
        first = self.start + timedelta(days=self.day)
        weather = weather_series(self.seed, first, days)
        out = []
        for i, spec in enumerate(self.specs):
            home = simulate_home(spec, first, days, weather, self.seed)
            boundary: list[dict[str, str]] = []
            if self.day:
                boundary = home._at(0)
                home = HomeReadings(spec, home.times[1:], {c: v[1:] for c, v in home.registers.items()})
            self.specs[i] = replace(spec, initial={c: v[-1] for c, v in home.registers.items()})
            out.append(Work(spec, home, plan_batches(home, batch_hours, anomalies, self.seed + self.day).batches,
                            boundary))
        self.day += days
        return out


async def lag(runtime: Runtime) -> int:
    return sum(g.lag for g in await runtime.bus.lag(GROUP, [METERING_READINGS]))


async def send(url: str, work: list[Work], codes: dict[str, str], concurrency: int, totals: Totals) -> None:
    """Every home posts its batches in order; `concurrency` homes at a time.

    The bodies are encoded before and posted with aiohttp, not httpx as `ppa simulate` does: the bench shares
    the machine's cores with the server, and httpx spends about 2 ms of CPU per request, aiohttp a fraction."""
    bodies = {w.spec.serial_number: [(orjson.dumps({"readings": b.readings}), len(b.readings)) for b in w.batches]
              for w in work}
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:

        async def home(serial: str) -> None:
            headers = {"Authorization": f"Bearer {codes[serial]}", "Content-Type": "application/json"}
            async with sem:
                for body, sent in bodies[serial]:
                    await post(session, serial, headers, body, sent, totals)

        await asyncio.gather(*(home(w.spec.serial_number) for w in work))


async def post(session: aiohttp.ClientSession, serial: str, headers: dict[str, str], body: bytes, sent: int,
               totals: Totals) -> None:
    """One batch; 429 and 5xx are retried a few times with backoff, anything else but 202 ends the run."""
    for attempt in range(6):
        async with session.post(f"/api/v1/devices/{serial}/readings", data=body, headers=headers) as r:
            if r.status == 202:
                totals.record(serial, sent, orjson.loads(await r.read()))
                return
            if r.status != 429 and r.status < 500:
                raise SystemExit(f"device {serial}: batch refused ({r.status}: {(await r.text())[:300]})")
        totals.retries += 1
        await asyncio.sleep(0.05 * 2 ** attempt)
    raise SystemExit(f"device {serial}: giving up after 6 attempts")


async def registered(client: httpx.AsyncClient, agency: dict[str, str], specs: list[HomeSpec]) -> None:
    """Wait until metering's device registry knows every home (it is filled from billing's events)."""
    for spec in specs:
        for _ in range(600):
            r = await client.get(f"/api/v1/customers/{spec.customer_number}/daily-usage", headers=agency)
            if r.status_code == 200:
                break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit(f"the device registry never saw {spec.serial_number}")


async def until_applied(runtime: Runtime, timeout: float) -> float:
    """Wait until the daily projection has applied everything published; returns when (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while (remaining := await lag(runtime)) > 0:
        if time.perf_counter() > deadline:
            raise SystemExit(f"daily usage still {remaining} batches behind after {timeout:.0f} s")
        await asyncio.sleep(0.05)
    return time.perf_counter()


async def verify(client: httpx.AsyncClient, agency: dict[str, str],
                 sample: dict[str, list[dict[str, str]]], first: date, last: date) -> dict[str, Any]:
    """Compare the sample customers' daily usage with an independent recomputation from their raw readings."""
    expected = expected_daily(sample)
    problems = {}
    for number, days in expected.items():
        r = await client.get(f"/api/v1/customers/{number}/daily-usage",
                             params={"from": first.isoformat(), "to": last.isoformat()}, headers=agency)
        found = compare_daily(days, r.json(), first, last) if r.status_code == 200 else [f"HTTP {r.status_code}"]
        if found:
            problems[number] = found[:3]
    return {"verified_customers": len(expected), "mismatched_customers": len(problems), "mismatches": problems}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    homes = args.homes
    days = max(1, -(-args.readings // (homes * READINGS_PER_DAY)))
    start = date.today() - timedelta(days=days + 2)
    slice_days = max(1, -(-args.slice // (homes * READINGS_PER_DAY))) if args.flat else days
    platform_ = Platform(args.runtime, args.synchronous, args.topology)
    platform_.others = dict(_named_pid(x) for x in args.server)
    result: dict[str, Any] = {
        "runtime": args.runtime, "topology": args.topology, "mode": "flat" if args.flat else "throughput",
        "homes": homes, "days": days,
        "batch_readings": args.batch_hours * 2 * len(CHANNELS), "concurrency": args.concurrency,
        "anomalies": args.anomalies, "sqlite_synchronous": args.synchronous if args.runtime == "embedded" else None,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_before": os.getloadavg()[0]},
    }
    began = time.perf_counter()
    platform_.create_agency(EMAIL, PASSWORD)
    await platform_.start()
    runtime = await Runtime.open(platform_.settings)
    limits = httpx.Limits(max_connections=args.concurrency + 4, max_keepalive_connections=args.concurrency + 4)
    try:
        async with httpx.AsyncClient(base_url=platform_.url, timeout=600.0, limits=limits) as client:
            token = (await client.post("/api/v1/auth/token", data={"username": EMAIL, "password": PASSWORD})).json()
            agency = {"Authorization": f"Bearer {token['access_token']}"}
            fleet = Fleet(homes, start, args.seed)
            codes = {s.serial_number: await _auth_code(client, agency, s, start, True, args.seed) for s in fleet.specs}
            await registered(client, agency, fleet.specs)
            sample_numbers = {s.customer_number for s in fleet.specs[:args.verify_homes]}
            totals, slices, done = Totals(), [], 0
            sent_readings, sample = 0, {}
            seconds = accept_seconds = client_cpu = 0.0
            cpu0, each0, others0 = platform_.cpu_seconds(), platform_.cpu_each(), platform_.cpu_others()
            commands0 = await platform_.samples("ppa_mongodb_commands_total")
            batches0 = await platform_.samples("ppa_consumer_batches_total")
            while fleet.day < days:
                n = min(slice_days, days - fleet.day)
                work = fleet.next_slice(n, args.batch_hours, args.anomalies)
                if fleet.day == days:
                    sample_first = fleet.start + timedelta(days=fleet.day - n)
                    sample = {w.spec.customer_number: w.boundary + w.home.readings() for w in work
                              if w.spec.customer_number in sample_numbers}
                unique = sum(w.home.count for w in work)
                cpu_before, t0, own0 = platform_.cpu_seconds(), time.perf_counter(), time.process_time()
                await send(platform_.url, work, codes, args.concurrency, totals)
                t_accept = time.perf_counter()
                t_done = await until_applied(runtime, args.timeout)
                cpu_used = platform_.cpu_seconds() - cpu_before
                client_cpu += time.process_time() - own0
                seconds += t_done - t0
                accept_seconds += t_accept - t0
                done += unique
                sent_readings = totals.readings_sent
                slices.append({"history_readings": done, "readings": unique,
                               "wall_us_per_reading": round((t_done - t0) / unique * 1e6, 2),
                               "server_cpu_us_per_reading": round(cpu_used / unique * 1e6, 2),
                               "readings_per_second": round(unique / (t_done - t0))})
                if args.flat:
                    print(json.dumps(slices[-1]), file=sys.stderr, flush=True)
            cpu_total = platform_.cpu_seconds() - cpu0
            commands = _delta(commands0, await platform_.samples("ppa_mongodb_commands_total"))
            batches = _delta(batches0, await platform_.samples("ppa_consumer_batches_total"))
            result.update({
                "readings_sent": sent_readings, "accepted": totals.accepted, "duplicates": totals.duplicates,
                "rejected": totals.rejected, "batches": totals.batches, "errors": totals.errors[:5],
                "http_accept_seconds": round(accept_seconds, 2),
                "http_accept_readings_per_second": round(totals.readings_sent / accept_seconds),
                "end_to_end_seconds": round(seconds, 2),
                "end_to_end_readings_per_second": round(totals.accepted / seconds),
                "server_cpu_seconds": round(cpu_total, 2),
                "server_cpu_us_per_reading": round(cpu_total / max(totals.accepted, 1) * 1e6, 2),
                "server_cpu_us_per_reading_by_process": {
                    name: round((seconds_ - each0.get(name, 0.0)) / max(totals.accepted, 1) * 1e6, 2)
                    for name, seconds_ in platform_.cpu_each().items()},
                # the bench's own CPU while sending and waiting (it shares the machine's cores with the server)
                "bench_client_cpu_seconds": round(client_cpu, 2),
                # FerretDB's, Kafka's (named with --server NAME=PID): not in server_cpu_* above
                "other_servers_cpu_us_per_reading": {
                    name: round((seconds_ - others0[name]) / max(totals.accepted, 1) * 1e6, 2)
                    for name, seconds_ in platform_.cpu_others().items()},
                "round_trips": round_trips(commands, batches, totals.batches),
                "server_peak_rss_mb": platform_.peak_rss_mb(),
                "bench_client_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "data_dir_mb": platform_.disk_mb() if args.runtime == "embedded" else None,
            })
            if args.flat:
                result["slices"] = slices
            if sample:
                result["verify"] = await verify(client, agency, sample, sample_first,
                                                fleet.start + timedelta(days=days - 1))
    finally:
        await runtime.close()
        platform_.stop()
        platform_.remove()
    result["total_seconds"] = round(time.perf_counter() - began, 1)
    return result


def _named_pid(text: str) -> tuple[str, int]:
    name, _, pid = text.partition("=")
    if not name or not pid.isdigit():
        raise SystemExit(f"--server takes NAME=PID, not {text!r}")
    return name, int(pid)


def _delta(before: dict[str, dict[tuple, float]], after: dict[str, dict[tuple, float]]) -> dict[str, dict[str, float]]:
    """Per process, per label value (joined), how much each counter grew."""
    return {process: {",".join(v for _, v in labels) or "-": n - before.get(process, {}).get(labels, 0.0)
                      for labels, n in found.items() if n - before.get(process, {}).get(labels, 0.0)}
            for process, found in after.items()}


def round_trips(commands: dict[str, dict[str, float]], batches: dict[str, dict[str, float]], posts: int) -> dict:
    """MongoDB commands per device POST by process, and per batch the daily projection applied at once."""
    out: dict[str, Any] = {"posts": posts, "by_process_and_command": {
        process: {c: int(n) for c, n in sorted(found.items())} for process, found in commands.items() if found}}
    out["per_post"] = {process: round(sum(found.values()) / max(posts, 1), 2) for process, found in commands.items()}
    applied = sum(n for found in batches.values() for group, n in found.items() if group == GROUP)
    if applied:
        metering = sum(sum(found.values()) for process, found in commands.items() if "metering" in process or process == "up")
        out["daily_projection_batches"] = int(applied)
        out["metering_worker_per_batch"] = round(metering / applied, 2) if metering else None
    return out


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/ingest.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime", choices=["embedded", "distributed"], default="embedded")
    p.add_argument("--topology", choices=list(TOPOLOGIES), default="up",
                   help="up: one `ppa up` process; split: gateway API + identity/billing/metering workers")
    p.add_argument("--readings", type=int, default=100_000, help="readings to send (rounded up to whole days)")
    p.add_argument("--homes", type=int, default=100)
    p.add_argument("--batch-hours", type=int, default=24, help="hours of readings per POST (24 → 144 readings)")
    p.add_argument("--concurrency", type=int, default=8, help="homes posting at once")
    p.add_argument("--anomalies", action=argparse.BooleanOptionalAction, default=False,
                   help="duplicates, late and out-of-order batches as `ppa simulate` sends them")
    p.add_argument("--flat", action="store_true", help="chronological slices; cost per reading as history grows")
    p.add_argument("--slice", type=int, default=100_000, help="readings per slice with --flat")
    p.add_argument("--verify-homes", type=int, default=10, help="customers whose days are checked afterwards")
    p.add_argument("--synchronous", default="FULL", help="embedded SQLite synchronous setting (as `ppa up`)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--server", action="append", default=[], metavar="NAME=PID",
                   help="a server the platform uses (e.g. ferretdb=PID, kafka=PID) whose CPU is reported too")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for daily usage to catch up")
    args = p.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
