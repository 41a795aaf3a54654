"""bench/owner_energy — 電力データを見る's year and month views of one home, under load, with N homes' year loaded.

Builds the platform in this process (embedded runtime, or distributed with KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI),
serves the gateway on a loopback port, registers one PPA customer and an owner who proves its device, then loads
metering's half-hour projection straight into its collections: a year of month rollups and the year's summary for
every one of N homes (the documents the views read, made by the projection's own functions) and a year of day
documents for the measured home. Going through the device API would take hours for a year of 10,000
homes (48 × 5 registers a day each). Then `hey` (a second process) requests the year view and the month view of
the measured home with the owner's session cookie: p50/p99 and requests per second. Prints one JSON document.

    uv run python bench/owner_energy.py --homes 10000
    uv run python bench/owner_energy.py --homes 2000 --seconds 10 --concurrency 8

`hey`: `GOBIN=~/.cache/ppa-ci/bin go install github.com/rakyll/hey@latest` (or --hey PATH).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from ppa.platform import build_host
from ppa_contracts.identity import AgencyProfile
from ppa_gateway.app import create_app
from ppa_metering.daily_projection import Device
from ppa_metering.domain.intervals import SLOTS, IntervalDay
from ppa_metering.interval_projection import day_doc, month_summary, packed, rolled_up, unpacked, year_doc
from ppa_runtime.metrics import MONGODB_COMMANDS
from ppa_runtime.runtime import Runtime
from ppa_runtime.settings import Settings

YEAR = 2024
OWNER = {"family_name": "日見", "given_name": "太郎", "family_name_kana": "ニチコン", "given_name_kana": "タロウ",
         "postal_code": "1030026", "prefecture": "東京都", "city": "中央区", "street": "日本橋兜町",
         "phone": "0336667945", "info_opt_in": "no", "email": "bench-owner@example.jp"}
PASSWORD = "Passw0rd2024"


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def day_of(day: date, seed: int) -> IntervalDay:
    """A plausible day: sun around noon, import at night, a battery charged by day and used in the evening."""
    k = Decimal(90 + (seed + day.toordinal()) % 21) / 100
    sun = [max(0, 12 - abs(s - 24)) * Decimal("0.150") * k for s in range(SLOTS)]
    channels = {
        "pv_generation": tuple(v.quantize(Decimal("0.001")) for v in sun),
        "grid_export": tuple(max(v - Decimal("0.8"), Decimal(0)).quantize(Decimal("0.001")) for v in sun),
        "grid_import": tuple(Decimal("0.400") if s < 14 or s >= 36 else Decimal("0.050") for s in range(SLOTS)),
        "battery_charge": tuple(Decimal("0.200") if 20 <= s < 28 else Decimal("0.000") for s in range(SLOTS)),
        "battery_discharge": tuple(Decimal("0.250") if 38 <= s < 44 else Decimal("0.000") for s in range(SLOTS)),
    }
    return IntervalDay(day, channels)


def year_days() -> list[date]:
    day, out = date(YEAR, 1, 1), []
    while day.year == YEAR:
        out.append(day)
        day += timedelta(days=1)
    return out


def device(serial: str, agency_id: str, number: str) -> Device:
    d = Device(serial, "bench", "bench")
    d.customer = {"agency_id": agency_id, "customer_number": number}
    return d


def templates(agency_id: str) -> list[dict[str, Any]]:
    """Twelve month rollups of one home, to be copied under each home's serial."""
    d = device("TEMPLATE", agency_id, "0")
    by_month: dict[int, list[IntervalDay]] = {}
    for day in year_days():
        by_month.setdefault(day.month, []).append(day_of(day, 0))
    return [packed(rolled_up(f"TEMPLATE|{YEAR}-{m:02d}", d, None, days)) for m, days in sorted(by_month.items())]


def year_of(serial: str, rollups: list[dict[str, Any]]) -> dict[str, Any]:
    """The year summary the projection keeps beside these (packed) month rollups of one home."""
    return year_doc(serial, str(YEAR), {r["month"]: month_summary(unpacked(r)) for r in rollups})


async def load(metering, agency_id: str, homes: int, batch: int = 500) -> float:
    """Every home's year of month rollups and its year summary; returns seconds taken."""
    started = time.perf_counter()
    months = templates(agency_id)
    pending: list[dict[str, Any]] = []
    years: list[dict[str, Any]] = []
    for i in range(homes):
        serial = f"BENCH{i:06d}"
        mine = [{**m, "_id": f"{serial}|{m['month']}", "serial_number": serial, "customer_number": f"11{i:08d}"}
                for m in months]
        pending += mine
        years.append(year_of(serial, mine))
        if len(pending) >= batch:
            await asyncio.gather(metering.intervals.months.replace_many(pending),
                                 metering.intervals.years.replace_many(years))
            pending, years = [], []
        if i and i % 1000 == 0:
            progress(f"{i} homes loaded")
    if pending:
        await asyncio.gather(metering.intervals.months.replace_many(pending),
                             metering.intervals.years.replace_many(years))
    return time.perf_counter() - started


def commands_sent() -> float:
    """MongoDB commands this process has sent (round trips), all kinds."""
    return sum(sample.value for metric in MONGODB_COMMANDS.collect() for sample in metric.samples
               if sample.name.endswith("_total"))


async def one_at_a_time(url: str, cookie: str, pages: dict[str, str], distributed: bool,
                        n: int = 30) -> dict[str, Any]:
    """Each view requested n times in a row by one client: the latency without queueing, and (distributed) the
    MongoDB round trips one request makes."""
    out: dict[str, Any] = {"requests_each": n}
    async with httpx.AsyncClient(headers={"Cookie": cookie}) as client:
        for name, page_url in pages.items():
            before, times = commands_sent(), []
            for _ in range(n):
                started = time.perf_counter()
                assert (await client.get(page_url)).status_code == 200
                times.append((time.perf_counter() - started) * 1000)
            out[name] = {"p50_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}
            if distributed:
                out[name]["mongodb_commands_per_request"] = round((commands_sent() - before) / n, 1)
    return out


def hey_load(hey: str, url: str, cookie: str, seconds: int, concurrency: int) -> dict[str, Any]:
    out = subprocess.run([hey, "-z", f"{seconds}s", "-c", str(concurrency), "-o", "csv", "-H", f"Cookie: {cookie}",
                          url], capture_output=True, text=True, check=True)
    rows = [line.split(",") for line in out.stdout.splitlines()[1:] if line]
    ms = sorted(float(r[0]) * 1000 for r in rows)
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r[6]] = statuses.get(r[6], 0) + 1
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {"requests": len(ms), "statuses": statuses, "requests_per_second": round(len(ms) / seconds, 1),
            "p50_ms": round(q[49], 1), "p99_ms": round(q[98], 1), "max_ms": round(ms[-1], 1)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    hey = args.hey or shutil.which("hey") or str(Path.home() / ".cache/ppa-ci/bin/hey")
    if not Path(hey).exists():
        raise SystemExit("hey not found: GOBIN=~/.cache/ppa-ci/bin go install github.com/rakyll/hey@latest")
    data = Path(tempfile.mkdtemp(prefix="ppa-bench-energy-"))
    distributed = args.runtime == "distributed"
    settings = Settings(data_dir=data, namespace=f"benchenergy{uuid.uuid4().hex[:8]}_", log_level="WARNING",
                        kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") if distributed else None,
                        mongodb_uri=os.environ.get("MONGODB_URI") if distributed else None,
                        # one process: a key of its own (Kafka + MongoDB processes refuse to start without one)
                        secret_key=os.environ.get("PPA_SECRET_KEY") or secrets.token_urlsafe(48))
    runtime = await Runtime.open(settings)
    host = build_host(runtime, ["identity", "billing", "metering"])
    app = create_app(host)
    await host.start()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off",
                                           access_log=False))
    task = asyncio.create_task(server.serve())
    result: dict[str, Any] = {"bench": "owner_energy", "runtime": args.runtime, "homes": args.homes,
                              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                          "loadavg_before": os.getloadavg()[0]}}
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        identity, metering = host.service("identity"), host.service("metering")
        agency_id = await identity.create_agency("bench-energy@example.jp", "benchpassword1",
                                                 AgencyProfile(company="ベンチ電力"))
        customer = await host.service("billing").portal.register_customer(agency_id, {
            "customer_number": "1199999999", "serial_number": "BENCH-HOME", "name": "日見 太郎", "base_fee": "980",
            "sell_unit_price": "16.00", "usage_unit_price": "27.00", "contract_start": f"{YEAR}-01-01"})
        while await metering.devices.authenticate("BENCH-HOME", customer["auth_code"]) is None:
            await asyncio.sleep(0.1)
        progress(f"loading {args.homes} homes × 12 month rollups")
        result["load_seconds"] = round(await load(metering, agency_id, args.homes), 1)
        home = device("BENCH-HOME", agency_id, "1199999999")
        days = [day_of(day, 7) for day in year_days()]
        await metering.intervals.daily.replace_many([packed(day_doc(home, d)) for d in days])
        rollups = [packed(rolled_up(f"BENCH-HOME|{YEAR}-{m:02d}", home, None, [d for d in days if d.date.month == m]))
                   for m in range(1, 13)]
        await metering.intervals.months.replace_many(rollups)
        await metering.intervals.years.replace_many([year_of("BENCH-HOME", rollups)])

        await identity.owners.register(OWNER, PASSWORD, PASSWORD, "192.0.2.1")
        async with httpx.AsyncClient(base_url=url) as client:
            form = await client.get("/mypage/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
            await client.post("/mypage/login", data={"email": OWNER["email"], "password": PASSWORD,
                                                     "csrf_token": token})
            form = await client.get("/mypage/products/new")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
            proved = await client.post("/mypage/products/new", data={
                "csrf_token": token, "system_model": "ESS-U4X1", "system_serial": "BENCH-HOME",
                "install_postal_code": "1030026", "watch_service": "yes", "weather_alert_control": "no",
                "early_warning_control": "no", "ai_control": "no", "auth_code": customer["auth_code"]})
            assert proved.status_code == 303, proved.text
            owner = await identity.owners.find_by_email(OWNER["email"])
            [product_id] = owner.homes
            cookie = f"ppa_session={client.cookies.get('ppa_session')}"
            year = await client.get(f"/mypage/energy/{product_id}", params={"view": "year", "at": str(YEAR)})
            assert year.status_code == 200 and year.text.count('class="bar generation"') == 12, year.text[:500]
        if args.profile:
            import cProfile
            import pstats

            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                         cookies={"ppa_session": cookie.split("=", 1)[1]}) as inproc:
                profiler = cProfile.Profile()
                profiler.enable()
                for _ in range(50):
                    await inproc.get(f"/mypage/energy/{product_id}", params={"view": "year", "at": str(YEAR)})
                profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats("ppa_|jinja|sqlite|decimal", 40)
        pages = {"year_view": f"{url}/mypage/energy/{product_id}?view=year&at={YEAR}",
                 "month_view": f"{url}/mypage/energy/{product_id}?view=month&at={YEAR}-05"}
        result["one_at_a_time"] = await one_at_a_time(url, cookie, pages, distributed)
        result["load"] = {"tool": "hey", "seconds_each": args.seconds, "concurrency": args.concurrency}
        for name, page_url in pages.items():
            progress(f"hey: {name}")
            # hey runs in its own process while this one serves: the event loop answers it
            result["load"][name] = await asyncio.to_thread(hey_load, hey, page_url, cookie, args.seconds,
                                                           args.concurrency)
    finally:
        server.should_exit = True
        await task
        await host.stop()
        await runtime.close()
        shutil.rmtree(data, ignore_errors=True)
        if distributed:
            await drop_databases(settings)
    return result


async def drop_databases(settings: Settings) -> None:
    """The run's databases go (a year of 10,000 homes is gigabytes on FerretDB, and listing databases slows
    down with every one left)."""
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(settings.mongodb_uri_value)
    try:
        for name in await client.list_database_names():
            if name.startswith(settings.namespace):
                await client.drop_database(name)
    finally:
        await client.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runtime", choices=["embedded", "distributed"], default="embedded")
    p.add_argument("--homes", type=int, default=10_000)
    p.add_argument("--seconds", type=int, default=10, help="hey's duration per view")
    p.add_argument("--concurrency", type=int, default=8, help="hey's concurrent requests")
    p.add_argument("--hey", help="path of the hey binary")
    p.add_argument("--profile", action="store_true", help="profile 50 year views in process first (stderr)")
    print(json.dumps(asyncio.run(main(p.parse_args())), ensure_ascii=False, indent=2))
