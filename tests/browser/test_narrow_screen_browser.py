"""Every page on a 390 px wide phone screen in chromium: nothing scrolls sideways (a wide table scrolls inside its
own box), the agency menu is the same on every agency page, and a typed postal code or phone number with
hyphens is not cut by the input's maxlength. Screenshots of each page under artifacts/screenshots/narrow_*."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import pytest

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile
from ppa_contracts.metering import DailyUsageComputed, DailyValues
from ppa_contracts.topics import METERING_DAILY_USAGE
from support import live_portal, screenshot

pytestmark = pytest.mark.browser
WIDTH = 390
MENU = ["管理画面", "登録ユーザー一覧", "請求管理", "顧客管理", "事業者設定", "販売店・業者様情報"]
CUSTOMER = {"customer_number": "1120230030", "serial_number": "E2300030", "name": "顧客0151", "name_kana": "コキヤク0151",
            "contract_start": "2023-12-16", "contract_end": "2037-12-15", "base_fee": "980",
            "sell_unit_price": "16.00", "usage_unit_price": "27.00", "notes": "パネル 5.5kW",
            "email": "a-very-long-address-of-a-customer@example-of-a-long-domain.co.jp"}
AGENCY_PAGES = ["/agency/", "/agency/invoices?month=2024/01", "/agency/invoices/24011120230030",
                "/agency/invoices/24011120230030/issue", "/agency/customers", "/agency/customers/new",
                "/agency/customers/1120230030", "/agency/customers/1120230030/invoices",
                "/agency/customers/1120230030/usage?month=2024/01", "/agency/settings/billing", "/agency/users",
                "/agency/profile", "/agency/profile/edit", "/agency/password"]
PUBLIC_PAGES = ["/agency/login", "/agency/signup", "/mypage/login", "/mypage/register", "/mypage/password/reset"]


def usage(agency_id: str, day: int) -> Envelope:
    g, s, z = Decimal("21.35") + day, Decimal("12.10"), Decimal("0")
    values = DailyValues(generation_kwh=g, sold_kwh=s, usage_kwh=g - s, import_kwh=z, battery_charge_kwh=z,
                         battery_discharge_kwh=z, estimated=False, reset=False, usage_clamped=False)
    return Envelope.wrap(DailyUsageComputed(agency_id=agency_id, customer_number="1120230030",
                                            serial_number="E2300030", date=date(2024, 1, day), values=values),
                         subject="1120230030", correlation_id="t", aggregate_version=1)


async def scroll_width(page) -> int:
    return await page.evaluate("document.documentElement.scrollWidth")


async def test_no_page_scrolls_sideways_on_a_phone_and_the_agency_menu_is_one(runtime, browser_page, runtime_kind):
    page = browser_page
    await page.set_viewport_size({"width": WIDTH, "height": 844})
    async with live_portal(runtime) as (url, host):
        agency_id = await host.service("identity").create_agency("shop@example.jp", "password123",
                                                                 AgencyProfile(company="ナローブラウザ電力株式会社"))
        billing = host.service("billing").portal
        await billing.save_settings(agency_id, {"closing_day": "15", "rounding": "half_up",
                                                "issuer_name": "ナローブラウザ電力株式会社",
                                                "issuer_address": "東京都中央区日本橋兜町1-13", "registration_number": ""})
        await billing.register_customer(agency_id, dict(CUSTOMER))
        await runtime.bus.publish(METERING_DAILY_USAGE, [usage(agency_id, d) for d in range(16, 32)])
        for path in PUBLIC_PAGES:
            await page.goto(f"{url}{path}")
            await screenshot(page, f"narrow_{path.strip('/').replace('/', '_')}_{runtime_kind}")
            assert await scroll_width(page) <= WIDTH, path
        # a hyphenated postal code and phone number typed key by key are kept whole for the check
        await page.goto(f"{url}/mypage/register")
        await page.locator("#postal_code").press_sequentially("１０３－００２６")
        await page.locator("#phone").press_sequentially("03-3666-7945")
        assert await page.input_value("#postal_code") == "１０３－００２６"
        assert await page.input_value("#phone") == "03-3666-7945"

        await page.goto(f"{url}/agency/login")
        await page.fill("#email", "shop@example.jp")
        await page.fill("#password", "password123")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{url}/agency/")
        for _ in range(100):  # the days reach the invoice
            await page.goto(f"{url}/agency/invoices/24011120230030")
            if "2024/01/31" in await page.content():
                break
            await asyncio.sleep(0.2)
        for path in AGENCY_PAGES:
            response = await page.goto(f"{url}{path}")
            assert response.status == 200, path
            await screenshot(page, f"narrow_{path.strip('/').split('?')[0].replace('/', '_')}_{runtime_kind}")
            assert await scroll_width(page) <= WIDTH, (path, await scroll_width(page))
            menu = [t.strip() for t in await page.locator("header nav a").all_inner_texts()]
            assert menu == MENU, (path, menu)
            assert await page.locator("header nav button:has-text('ログアウト')").count() == 1, path
        # the month's table is wider than the screen: it scrolls inside its own box
        await page.goto(f"{url}/agency/invoices?month=2024/01")
        table = page.locator("table.invoices")
        assert await table.evaluate("t => t.scrollWidth > t.clientWidth")
        assert await table.evaluate("t => t.getBoundingClientRect().right") <= WIDTH
