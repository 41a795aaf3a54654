"""bench/scale_out — the daily projection's throughput with one metering worker, then with two, in one run (Kafka).

Starts the split topology on Kafka and MongoDB (gateway API, identity and billing workers, each its own process)
and registers two sets of homes while one metering worker runs (its device registry must know them). Then, per
round: no metering worker runs while one set's readings are posted through the device API (a backlog on the
readings topic), then N metering workers start in one consumer group and the round lasts until the group's
committed positions reach the end of every partition of the readings topic. A round's rate is its readings over
the seconds from the first commit to the last (worker start-up left out; from the start is printed as well).
Rounds alternate (1, 2, 2, 1 workers by default) so that a change in the machine's load weighs on both alike;
the ratio is the two-worker rounds' mean rate over the one-worker rounds'. Prints one JSON document.

    uv run python bench/scale_out.py --readings 40000     # KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI
    uv run python bench/scale_out.py --server ferretdb=PID --server kafka=PID   # their CPU too

Every process shares the machine's cores with Kafka, MongoDB (or FerretDB) and the bench itself: two workers can
only go faster than one where a core is left over (see docs/scale-out.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date, timedelta
from typing import Any

import httpx

from ingest import EMAIL, GROUP, PASSWORD, READINGS_PER_DAY, Fleet, _named_pid, registered, send, verify
from ppa.simulate import Totals, _auth_code
from ppa_contracts.topics import METERING_READINGS
from ppa_runtime.bus_kafka import _partition
from ppa_runtime.runtime import Runtime
from processes import PPA, Platform, _cpu, _free_port


class Workers:
    """Metering workers started and stopped by the bench, beside the platform's other processes."""

    def __init__(self, platform_: Platform) -> None:
        self.platform = platform_
        self.procs: list[subprocess.Popen] = []

    async def start(self, count: int) -> None:
        log = (self.platform.dir / "metering.log").open("ab")
        ports = [_free_port() for _ in range(count)]
        self.procs = [subprocess.Popen([PPA, "worker", "metering", "--health-host", "127.0.0.1", "--health-port",
                                        str(port)], env=self.platform.env, stdout=log, stderr=subprocess.STDOUT)
                      for port in ports]
        async with httpx.AsyncClient() as client:
            for port, proc in zip(ports, self.procs):
                for _ in range(1200):
                    if proc.poll() is not None:
                        raise SystemExit(f"a metering worker exited: {(self.platform.dir / 'metering.log').read_text()[-2000:]}")
                    try:
                        if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)

    def cpu_seconds(self) -> float:
        return sum(_cpu(p.pid) for p in self.procs if p.poll() is None)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=60)
        self.procs = []


async def positions(runtime: Runtime) -> tuple[int, int]:
    """The daily-usage group's committed positions and the ends, summed over the readings topic's partitions."""
    found = await runtime.bus.lag(GROUP, [METERING_READINGS])
    return sum(p.committed for p in found), sum(p.end for p in found)


async def round_(runtime: Runtime, workers: Workers, count: int, timeout: float,
                 others: dict[str, int]) -> dict[str, Any]:
    """Start `count` metering workers on the backlog; time them until it is applied. CPU seconds (theirs, and the
    named servers') are counted from their first commit on, start-up left out."""
    committed0, end = await positions(runtime)
    spawned = time.perf_counter()
    task = asyncio.create_task(workers.start(count))
    first = None
    cpu0 = cpu = 0.0
    servers0: dict[str, float] = {}
    while True:
        committed, _ = await positions(runtime)
        now = time.perf_counter()
        if first is None and committed > committed0:
            first, cpu0 = now, workers.cpu_seconds()
            servers0 = {name: _cpu(pid) for name, pid in others.items()}
        if committed >= end:
            break
        if now - spawned > timeout:
            raise SystemExit(f"{count} workers: still {end - committed} records behind after {timeout:.0f} s")
        cpu = workers.cpu_seconds() or cpu
        await asyncio.sleep(0.05)
    done = time.perf_counter()
    cpu = workers.cpu_seconds() or cpu
    servers = {name: round(_cpu(pid) - servers0.get(name, _cpu(pid)), 2) for name, pid in others.items()}
    await task
    workers.stop()
    return {"workers": count, "records": end - committed0, "seconds_from_start": round(done - spawned, 2),
            "seconds_from_first_commit": round(done - (first or spawned), 2),
            "workers_cpu_seconds": round(cpu - cpu0, 2), "servers_cpu_seconds": servers}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    homes = args.homes
    days = max(1, -(-args.readings // (homes * READINGS_PER_DAY)))
    start = date.today() - timedelta(days=days + 2)
    platform_ = Platform("distributed", "FULL", "split")
    platform_.commands = [c for c in platform_.commands if c[1:3] != ["worker", "metering"]]
    workers = Workers(platform_)
    others = dict(_named_pid(x) for x in args.server)
    partitions = list(range(6))
    result: dict[str, Any] = {
        "runtime": "distributed", "homes_per_round": homes, "days": days,
        "batch_readings": args.batch_hours * 2 * 3, "concurrency": args.concurrency,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_before": os.getloadavg()[0]},
    }
    platform_.create_agency(EMAIL, PASSWORD)
    await platform_.start()
    runtime = await Runtime.open(platform_.settings)
    try:
        partitions = list(range(len(await runtime.bus.partitions([METERING_READINGS]))))
        async with httpx.AsyncClient(base_url=platform_.url, timeout=600.0) as client:
            token = (await client.post("/api/v1/auth/token", data={"username": EMAIL, "password": PASSWORD})).json()
            agency = {"Authorization": f"Bearer {token['access_token']}"}
            fleets = [Fleet(homes, start, args.seed, first=1 + i * homes) for i in range(len(args.workers))]
            await workers.start(1)  # the device registry learns the homes from billing's events
            codes = {s.serial_number: await _auth_code(client, agency, s, start, True, args.seed)
                     for fleet in fleets for s in fleet.specs}
            for fleet in fleets:
                await registered(client, agency, fleet.specs)
            workers.stop()
            rounds = []
            for count, fleet in zip(args.workers, fleets):
                work = fleet.next_slice(days, args.batch_hours, False)
                totals = Totals()
                t0 = time.perf_counter()
                await send(platform_.url, work, codes, args.concurrency, totals)
                posted = time.perf_counter() - t0
                unique = sum(w.home.count for w in work)
                figures = await round_(runtime, workers, count, args.timeout, others)
                figures.update({
                    "readings": unique, "accepted": totals.accepted, "post_seconds": round(posted, 2),
                    "readings_per_second": round(unique / figures["seconds_from_first_commit"]),
                    "readings_per_second_from_start": round(unique / figures["seconds_from_start"]),
                    "homes_per_partition": [sum(1 for w in work if _partition(w.spec.serial_number.encode(), partitions,
                                                                              partitions) == p) for p in partitions],
                })
                sample = {w.spec.customer_number: w.home.readings() for w in work[:args.verify_homes]}
                figures["verify"] = await verify(client, agency, sample, fleet.start, fleet.start + timedelta(days=days - 1))
                rounds.append(figures)
                print(json.dumps(figures), file=sys.stderr, flush=True)
            result["readings_partitions"] = len(partitions)
            result["rounds"] = rounds
            rate = {n: [r["readings_per_second"] for r in rounds if r["workers"] == n] for n in set(args.workers)}
            result["mean_readings_per_second"] = {f"{n}_workers": round(sum(v) / len(v)) for n, v in rate.items()}
            if 1 in rate and 2 in rate:
                result["ratio_2_to_1"] = round(sum(rate[2]) / len(rate[2]) / (sum(rate[1]) / len(rate[1])), 2)
            result["loadavg_after"] = os.getloadavg()[0]
    finally:
        if workers.procs:
            workers.stop()
        await runtime.close()
        platform_.stop()
        if "rounds" in result:
            platform_.remove()
        else:
            print(f"the platform's logs are kept in {platform_.dir}", file=sys.stderr)
    return result


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/scale_out.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--readings", type=int, default=40_000, help="readings per round (rounded up to whole days)")
    p.add_argument("--homes", type=int, default=50, help="homes per round (each round has its own)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 2, 1],
                   help="metering workers per round, in order (each round its own homes)")
    p.add_argument("--server", action="append", default=[], metavar="NAME=PID",
                   help="a server the platform uses (e.g. ferretdb=PID, kafka=PID) whose CPU is reported too")
    p.add_argument("--batch-hours", type=int, default=24, help="hours of readings per POST (24 → 144 readings)")
    p.add_argument("--concurrency", type=int, default=8, help="homes posting at once")
    p.add_argument("--verify-homes", type=int, default=5, help="customers per round whose days are checked")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=900.0, help="seconds a round may take")
    args = p.parse_args()
    if not (os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("MONGODB_URI")):
        raise SystemExit("bench/scale_out.py runs on Kafka: set KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI")
    print(json.dumps(asyncio.run(run(args)), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
