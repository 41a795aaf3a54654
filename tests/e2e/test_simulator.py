"""`ppa simulate` against the platform served over real HTTP: duplicates, late and out-of-order batches
still give daily usage equal (to 0.01 kWh) to an independent recomputation from the raw readings."""

from __future__ import annotations

import argparse
import asyncio
import socket
from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

import httpx
import pytest
import uvicorn

from ppa.platform import build_host
from ppa.simulate import add_parser, compare_daily, expected_daily, plan_batches, run, simulate_fleet
from ppa_contracts.identity import AgencyProfile
from ppa_gateway.app import create_app

EMAIL, PASSWORD = "sim@example.jp", "password123"
START, DAYS, HOMES, SEED = date(2024, 6, 10), 3, 3, 7


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    return p.parse_args(["simulate", *argv])


@pytest.fixture
async def platform(runtime):
    """The platform's identity, billing and metering behind the gateway app, on a free loopback port."""
    host = build_host(runtime, ["identity", "billing", "metering"])
    await host.start()
    await host.service("identity").create_agency(EMAIL, PASSWORD, AgencyProfile(company="模擬電力"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(host), host="127.0.0.1", port=port, log_config=None,
                                           access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()
        await host.stop()


def test_arguments_and_defaults():
    args = parse("--start", "2024-01-01")
    assert (args.homes, args.days, args.url, args.seed, args.batch_hours, args.concurrency) == (
        10, 31, "http://127.0.0.1:8000", 1, 24, 8)
    assert args.anomalies is True and args.register is False and args.start == date(2024, 1, 1)
    assert parse("--start", "2024-01-01", "--no-anomalies").anomalies is False
    with pytest.raises(SystemExit):
        parse("--homes", "3")  # --start is required


def test_registers_are_exact_monotonic_and_plans_keep_every_reading():
    fleet = simulate_fleet(homes=2, days=3, start=START, seed=SEED)
    again = simulate_fleet(homes=3, days=3, start=START, seed=SEED)
    assert [h.readings() for h in fleet] == [h.readings() for h in again[:2]]  # deterministic, per home
    for home in fleet:
        assert [t.isoformat()[-15:] for t in home.times[:2]] == ["T00:00:00+09:00", "T00:30:00+09:00"]
        assert len(home.times) == DAYS * 48 + 1
        for values in home.registers.values():
            assert all(isinstance(v, Decimal) and v == v.quantize(Decimal("0.001")) for v in values)
            assert all(b >= a for a, b in pairwise(values))
        pv, sold, bought = (home.registers[c] for c in ("pv_generation", "grid_export", "grid_import"))
        assert pv[-1] - pv[0] > 0 and sold[-1] - sold[0] <= pv[-1] - pv[0] and bought[-1] > bought[0]
        plan = plan_batches(home, 24, True, SEED)
        assert plan.duplicate_batches and plan.late_batches and plan.shuffled_batches
        sent = [tuple(r.values()) for b in plan.batches for r in b.readings]
        assert set(sent) == {tuple(r.values()) for r in home.readings()}
        assert len(sent) - home.count == plan.expected_duplicates
        # The same set in any order gives the same totals.
        shuffled = {"x": [r for b in plan.batches for r in b.readings]}
        assert expected_daily(shuffled)["x"] == expected_daily({"x": home.readings()})["x"]


def test_expected_daily_splits_midnight_pro_rata():
    got = expected_daily({"h": [
        {"at": "2024-01-16T12:00:00+09:00", "channel": "pv_generation", "kwh": "100"},
        {"at": "2024-01-17T12:00:00+09:00", "channel": "pv_generation", "kwh": "110"},
        {"at": "2024-01-16T23:30:00+09:00", "channel": "grid_export", "kwh": "5"},
        {"at": "2024-01-17T00:00:00+09:00", "channel": "grid_export", "kwh": "6"},
    ]})["h"]
    assert got[date(2024, 1, 16)]["generation_kwh"] == 5 and got[date(2024, 1, 16)]["sold_kwh"] == 1
    assert got[date(2024, 1, 17)]["generation_kwh"] == 5 and got[date(2024, 1, 17)]["sold_kwh"] == 0
    assert got[date(2024, 1, 16)]["estimated"] and got[date(2024, 1, 16)]["usage_kwh"] == 4


def test_expected_daily_makes_no_day_of_a_lone_midnight_reading():
    got = expected_daily({"h": [
        {"at": "2024-01-16T18:00:00+09:00", "channel": "pv_generation", "kwh": "100"},
        {"at": "2024-01-17T00:00:00+09:00", "channel": "pv_generation", "kwh": "101"},
        {"at": "2024-01-18T00:00:00+09:00", "channel": "grid_export", "kwh": "3"},
    ]})["h"]
    assert list(got) == [date(2024, 1, 16)] and got[date(2024, 1, 16)]["generation_kwh"] == 1


async def test_simulated_fleet_matches_independent_recomputation(platform):
    args = parse("--homes", str(HOMES), "--days", str(DAYS), "--start", START.isoformat(), "--url", platform,
                 "--agency-email", EMAIL, "--agency-password", PASSWORD, "--register", "--seed", str(SEED),
                 "--concurrency", "4")
    summary = await run(args)
    fleet = simulate_fleet(homes=HOMES, days=DAYS, start=START, seed=SEED)
    unique = sum(h.count for h in fleet)
    assert summary["errors"] == [] and summary["rejected"] == 0, summary
    assert summary["homes"] == HOMES and summary["unique_readings"] == unique == HOMES * (DAYS * 48 + 1) * 3
    assert summary["accepted"] == unique
    assert summary["duplicates"] == summary["anomalies"]["expected_duplicates"] > 0
    assert summary["readings_sent"] == unique + summary["duplicates"]
    assert summary["anomalies"]["late_batches"] > 0 and summary["anomalies"]["shuffled_batches"] > 0
    assert summary["readings_per_second"] > 0

    expected = expected_daily({h.spec.customer_number: h.readings() for h in fleet})
    last = START + timedelta(days=DAYS - 1)
    async with httpx.AsyncClient(base_url=platform, timeout=30) as client:
        token = (await client.post("/api/v1/auth/token", data={"username": EMAIL, "password": PASSWORD})).json()
        agency = {"Authorization": f"Bearer {token['access_token']}"}

        async def shown(number: str) -> list[dict]:
            r = await client.get(f"/api/v1/customers/{number}/daily-usage",
                                 params={"from": START.isoformat(), "to": last.isoformat()}, headers=agency)
            return r.json() if r.status_code == 200 else []

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 45
        while True:
            problems = {n: compare_daily(days, await shown(n), START, last) for n, days in expected.items()}
            problems = {n: p for n, p in problems.items() if p}
            if not problems or loop.time() > deadline:
                break
            await asyncio.sleep(0.25)
        assert not problems, problems

        # Every day, compared field by field: the API's 2 decimals are the recomputation rounded.
        for number, days in expected.items():
            rows = await shown(number)
            assert [r["date"] for r in rows] == [(START + timedelta(days=d)).isoformat() for d in range(DAYS)]
            for row in rows:
                want = days[date.fromisoformat(row["date"])]
                gen, sold = Decimal(row["generation_kwh"]), Decimal(row["sold_kwh"])
                assert abs(gen - want["generation_kwh"]) <= Decimal("0.01")
                assert abs(sold - want["sold_kwh"]) <= Decimal("0.01")
                assert Decimal(row["usage_kwh"]) == gen - sold
                assert abs(Decimal(row["usage_kwh"]) - want["usage_kwh"]) <= Decimal("0.01")
                assert gen > 0 and row["estimated"] is False

    # Running again reuses the customers (409 → read the auth code) and everything is a duplicate.
    again = await run(args)
    assert again["errors"] == [] and again["accepted"] == 0 and again["duplicates"] == again["readings_sent"]
