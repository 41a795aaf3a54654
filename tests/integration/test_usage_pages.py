"""顧客管理 - 日別利用量: a customer's month of daily usage as bars and a table, fed by a device through the
real ingestion API; month navigation, a bad month in Japanese, another agency's customer is a 404."""

from __future__ import annotations

import re

import httpx
import pytest
from support import eventually, portal

CUSTOMER = {"customer_number": "1120240002", "serial_number": "HEMS0002", "name": "鈴木 一郎",
            "base_fee": "980", "sell_unit_price": "16.00", "usage_unit_price": "27.00",
            "contract_start": "2024-01-01"}


async def logged_in(p, who: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=p.client._transport, base_url="http://t")
    token = re.search(r'name="csrf_token" value="([^"]+)"', (await client.get("/agency/login")).text).group(1)
    done = await client.post("/agency/login", data={"email": f"{who}@example.jp", "password": "password123",
                                                    "csrf_token": token})
    assert done.status_code == 303
    return client


def reading(at: str, channel: str, kwh: str) -> dict:
    return {"at": at, "channel": channel, "kwh": kwh}


@pytest.fixture
async def site(runtime):
    async with portal(runtime, ["identity", "billing", "metering"]) as p:
        created = await p.client.post("/api/v1/customers", json=CUSTOMER, headers=p.tokens["a"])
        assert created.status_code == 201, created.text
        code = created.json()["auth_code"]
        metering = p.host.service("metering")

        async def registered():
            return await metering.devices.authenticate("HEMS0002", code) or None

        assert await eventually(registered, timeout=60), "registry never saw the device"
        a, b = await logged_in(p, "a"), await logged_in(p, "b")
        try:
            yield p, a, b, {"Authorization": f"Bearer {code}"}
        finally:
            await a.aclose()
            await b.aclose()


async def test_a_month_of_daily_usage_as_chart_and_table_with_navigation(site):
    p, a, b, device = site
    # Cumulative registers at midnight JST: 2024-02-28 → 29 → 03-01, so February has two whole days
    # (the leap day included) and March one.
    readings = [reading(f"{d}T00:00:00+09:00", ch, v) for d, ch, v in (
        ("2024-02-28", "pv_generation", "1000.00"), ("2024-02-29", "pv_generation", "1012.50"),
        ("2024-03-01", "pv_generation", "1020.25"), ("2024-03-02", "pv_generation", "1031.00"),
        ("2024-02-28", "grid_export", "500.00"), ("2024-02-29", "grid_export", "505.00"),
        ("2024-03-01", "grid_export", "509.00"), ("2024-03-02", "grid_export", "513.50"))]
    pushed = await p.client.post("/api/v1/devices/HEMS0002/readings", json={"readings": readings}, headers=device)
    assert pushed.status_code == 202 and pushed.json()["accepted"] == 8

    async def february():
        page = await a.get("/agency/customers/1120240002/usage", params={"month": "2024/02"})
        return page if page.status_code == 200 and ">2024/02/29</a>" in page.text else None

    page = await eventually(february, timeout=60)
    assert page is not None, "daily usage never reached the page"
    html = page.text
    assert "顧客管理 - 日別利用量 (1120240002)" in html and "鈴木 一郎" in html
    rows = re.findall(r"<tr><td><a href=\"[^\"]+\">(\d{4}/\d\d/\d\d)</a>[^<]*</td>\s*<td class=\"num\">([\d,.]+)</td>"
                      r"<td class=\"num\">([\d,.]+)</td><td class=\"num\">([\d,.]+)</td>\s*"
                      r"<td class=\"num\">([\d,.]+)</td></tr>", html)
    # no import register and no battery: 買電量 0.00, and no battery columns
    assert rows == [("2024/02/28", "12.50", "5.00", "7.50", "0.00"), ("2024/02/29", "7.75", "4.00", "3.75", "0.00")]
    assert "蓄電池" not in html
    assert re.search(r'class="totals"><th scope="row">合計</th><td class="num">20.25</td>\s*'
                     r'<td class="num">9.00</td><td class="num">11.25</td>', html)
    # One bar per series and day, each carrying its value.
    assert re.findall(r'class="bar generation_kwh"[^>]*data-value="([\d.]+)"', html) == ["12.50", "7.75"]
    assert re.findall(r'class="bar usage_kwh"[^>]*data-value="([\d.]+)"', html) == ["7.50", "3.75"]
    assert 'href="?month=2024/01"' in html and 'href="?month=2024/03"' in html
    march = (await a.get("/agency/customers/1120240002/usage", params={"month": "2024-03"})).text
    # 03-02 has only its midnight reading so far: that reading closes 03-01, and 03-02 is no day yet (no 0 kWh)
    assert re.findall(r'class="bar sold_kwh"[^>]*data-value="([\d.]+)"', march) == ["4.50"]
    assert ">2024/02/29</a>" not in march and "2024/03/01 ~ 2024/03/31" in march
    empty = (await a.get("/agency/customers/1120240002/usage", params={"month": "2023/12"})).text
    assert "この期間の利用データはまだありません" in empty and 'class="bar ' not in empty
    # The page and the API agree.
    api = await p.client.get("/api/v1/customers/1120240002/daily-usage", params={"from": "2024-02-01", "to": "2024-02-29"},
                             headers=p.tokens["a"])
    assert [(d["generation_kwh"], d["sold_kwh"], d["usage_kwh"]) for d in api.json()] == [r[1:4] for r in rows]


async def test_a_bad_month_is_explained_and_other_agencies_and_strangers_are_kept_out(site):
    p, a, b, _ = site
    bad = await a.get("/agency/customers/1120240002/usage", params={"month": "2024/13"})
    assert bad.status_code == 422 and "表示月はYYYY/MMの形式で入力してください（例: 2024/01、2024-01）。" in bad.text
    # a calendar month here, so not called 利用月 (which is a billing month, closing day to closing day)
    assert ">表示月</label>" in bad.text and "利用月" not in bad.text
    assert (await b.get("/agency/customers/1120240002/usage")).status_code == 404
    assert (await a.get("/agency/customers/1199999999/usage")).status_code == 404
    stranger = httpx.AsyncClient(transport=p.client._transport, base_url="http://t")
    r = await stranger.get("/agency/customers/1120240002/usage")
    assert r.status_code == 303 and r.headers["location"] == "/agency/login"
    await stranger.aclose()
    current = await a.get("/agency/customers/1120240002/usage")
    assert current.status_code == 200 and 'id="next-month"' not in current.text and 'id="previous-month"' in current.text
    assert 'href="/agency/customers/1120240002/usage"' in (await a.get("/agency/customers/1120240002")).text


async def test_import_and_battery_series_and_the_half_hour_day_view(site):
    p, a, b, device = site
    # 2024-06-10: half-hour registers from 12:00 with grid import and a battery
    readings = [reading(f"2024-06-10T{h}+09:00", ch, v) for h, ch, v in (
        ("12:00:00", "pv_generation", "100.0"), ("12:30:00", "pv_generation", "101.5"),
        ("12:00:00", "grid_import", "50.0"), ("12:30:00", "grid_import", "50.2"),
        ("12:00:00", "battery_charge", "7.0"), ("12:30:00", "battery_charge", "7.5"),
        ("12:00:00", "battery_discharge", "3.0"), ("12:30:00", "battery_discharge", "3.0"))]
    pushed = await p.client.post("/api/v1/devices/HEMS0002/readings", json={"readings": readings}, headers=device)
    assert pushed.status_code == 202

    async def june():
        page = await a.get("/agency/customers/1120240002/usage", params={"month": "2024/06"})
        return page if ">2024/06/10</a>" in page.text else None

    html = (await eventually(june, timeout=60)).text
    assert "蓄電池 充電" in html and "買電量" in html
    assert re.findall(r'class="bar import_kwh"[^>]*data-value="([\d.]+)"', html) == ["0.20"]
    assert re.findall(r'class="bar battery_charge_kwh"[^>]*data-value="([\d.]+)"', html) == ["0.50"]

    async def half_hours():
        page = await a.get("/agency/customers/1120240002/usage/day", params={"date": "2024-06-10"})
        return page if page.status_code == 200 and "1.50" in page.text else None

    day = (await eventually(half_hours, timeout=60)).text
    assert day.count('class="bar generation"') == 48
    row = re.search(r"<tr><td>12:00</td>(.*?)</tr>", day, re.S).group(1)
    # 発電量, 売電量, 買電量, 自家消費, 充電, 放電, 消費量 = 1.5 − 0 + 0.2 + 0 − 0.5
    assert re.findall(r'<td class="num">([\d.]+)</td>', row) == ["1.50", "0.00", "0.20", "1.50", "0.50", "0.00", "1.20"]
    assert "円" not in day  # no owner prices on the agency's page
    bad = await a.get("/agency/customers/1120240002/usage/day", params={"date": "2024-02-30"})
    assert bad.status_code == 422 and "YYYY-MM-DD の形式" in bad.text
    assert (await b.get("/agency/customers/1120240002/usage/day", params={"date": "2024-06-10"})).status_code == 404
