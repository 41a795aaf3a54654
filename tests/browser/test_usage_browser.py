"""顧客管理 - 日別利用量 in a real browser: a device pushes a month of registers through the device API, the
agency opens the customer, follows 日別利用量 and moves between months; screenshots under artifacts/."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest

from ppa_contracts.identity import AgencyProfile
from support import live_portal, screenshot

pytestmark = pytest.mark.browser
FORM = {"customer_number": "1120240003", "serial_number": "HEMS0003", "name": "高橋 次郎", "name_kana": "タカハシ ジロウ",
        "contract_start": "2024-04-01", "base_fee": "980", "sell_unit_price": "16.00", "usage_unit_price": "27.00"}


def registers() -> list[dict]:
    """Midnight registers for 2024-04-01 … 05-03: April's days and two of May's (05-03 00:00 ends 05-02)."""
    out, pv, export = [], 5000, 2000
    day = date(2024, 4, 1)
    while day <= date(2024, 5, 3):
        out += [{"at": f"{day}T00:00:00+09:00", "channel": "pv_generation", "kwh": f"{pv}.00"},
                {"at": f"{day}T00:00:00+09:00", "channel": "grid_export", "kwh": f"{export}.00"}]
        pv += 10 + day.day % 7
        export += 4 + day.day % 3
        day += timedelta(days=1)
    return out


async def test_daily_usage_chart_and_month_navigation_in_chromium(runtime, browser_page, runtime_kind):
    page = browser_page
    async with live_portal(runtime, ["identity", "billing", "metering"]) as (url, host):
        agency_id = await host.service("identity").create_agency("usage@example.jp", "password123",
                                                                 AgencyProfile(company="日別電力"))
        customer = await host.service("billing").portal.register_customer(agency_id, FORM)
        metering = host.service("metering")
        for _ in range(300):
            if await metering.devices.authenticate("HEMS0003", customer["auth_code"]):
                break
            await page.wait_for_timeout(100)
        async with httpx.AsyncClient(base_url=url) as device:
            pushed = await device.post("/api/v1/devices/HEMS0003/readings", json={"readings": registers()},
                                       headers={"Authorization": f"Bearer {customer['auth_code']}"})
        assert pushed.status_code == 202 and pushed.json()["accepted"] == 66

        await page.goto(f"{url}/agency/login")
        await page.fill("#email", "usage@example.jp")
        await page.fill("#password", "password123")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{url}/agency/")
        await page.goto(f"{url}/agency/customers/1120240003")
        await page.click("text=日別利用量")
        await page.wait_for_url(f"{url}/agency/customers/1120240003/usage")
        await page.get_by_label("表示月").fill("2024/04")
        await page.click("form.month-nav button[type=submit]")
        for _ in range(150):
            if await page.locator("table.usage tbody tr").count() == 30:
                break
            await page.wait_for_timeout(200)
            await page.reload()
        assert await page.locator("table.usage tbody tr").count() == 30
        assert await page.locator("svg.chart rect.bar").count() == 4 * 30  # 発電量, 売電量, 利用量, 買電量
        first = await page.inner_text("table.usage tbody tr >> nth=0")
        assert first.split() == ["2024/04/01", "11.00", "5.00", "6.00", "0.00"]
        await screenshot(page, f"customer_usage_april_{runtime_kind}")
        await page.click("#next-month")
        await page.wait_for_url("**/usage?month=2024/05")
        # 05-01 and 05-02; the last register, at 05-03 00:00, ends 05-02 and makes no day of 0 kWh (the 00:00 rule)
        assert await page.locator("table.usage tbody tr").count() == 2
        await page.click("#previous-month")
        await page.click("#previous-month")
        await page.wait_for_url("**/usage?month=2024/03")
        assert "この期間の利用データはまだありません" in await page.inner_text("table.usage")
        await screenshot(page, f"customer_usage_empty_{runtime_kind}")
