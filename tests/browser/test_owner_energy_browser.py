"""「電力データを見る」 in a real browser: an agency registers a PPA customer, its device pushes four days of
half-hour registers, the owner sets five buy-price segments, proves the device with its serial and auth code,
and reads the day, month and year views with the fees; screenshots under artifacts/."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal

import httpx
import pytest

from ppa_contracts.identity import AgencyProfile
from support import eventually, live_portal, screenshot

pytestmark = pytest.mark.browser
JST = timezone(timedelta(hours=9))
OWNER = {"family_name": "日見", "given_name": "太郎", "family_name_kana": "ニチコン", "given_name_kana": "タロウ",
         "postal_code": "1030026", "prefecture": "東京都", "city": "中央区", "street": "日本橋兜町",
         "phone": "0336667945", "info_opt_in": "no", "email": "energy@example.jp"}
# (day type, start, end, price): 平日 night / day / 17–22 peak / late, and 土日祝 all day
SEGMENTS = [("weekday", "00:00", "07:00", "20"), ("weekday", "07:00", "17:00", "30"),
            ("weekday", "17:00", "22:00", "40"), ("weekday", "22:00", "00:00", "25"),
            ("holiday", "00:00", "00:00", "22")]
# 2024-05-02 Thursday, 05-03 憲法記念日 (Friday), 05-04 Saturday, 05-07 Tuesday
DAYS = [date(2024, 5, 2), date(2024, 5, 3), date(2024, 5, 4), date(2024, 5, 7)]
HOLIDAYS = {date(2024, 5, 3), date(2024, 5, 4)}


def half_hour_profile(slot: int) -> dict[str, Decimal]:
    """A home's half hour: sun from 06:00 to 18:00, exports at noon, a battery charged by day and used at night."""
    sun = max(0, 12 - abs(slot - 24)) * Decimal("0.15")
    export = max(sun - Decimal("0.8"), Decimal(0))
    night = slot < 14 or slot >= 36
    return {"pv_generation": sun, "grid_export": export,
            "grid_import": Decimal("0.40") if night else Decimal("0.05"),
            "battery_charge": Decimal("0.20") if 20 <= slot < 28 else Decimal(0),
            "battery_discharge": Decimal("0.25") if 38 <= slot < 44 else Decimal(0)}


def readings() -> list[dict]:
    """Cumulative registers every half hour through the four days (and the closing midnight of each)."""
    out, totals = [], dict.fromkeys(half_hour_profile(0), Decimal("1000.00"))
    for day in DAYS:
        start = datetime(day.year, day.month, day.day, tzinfo=JST)
        for slot in range(49):
            at = (start + timedelta(minutes=30 * slot)).isoformat()
            out += [{"at": at, "channel": c, "kwh": f"{v:.2f}"} for c, v in totals.items()]
            if slot < 48:
                totals = {c: totals[c] + half_hour_profile(slot)[c] for c in totals}
    return out


def price_of(day: date, slot: int) -> Decimal:
    if day in HOLIDAYS:
        return Decimal(22)
    hour = slot / 2
    return Decimal(20 if hour < 7 else 30 if hour < 17 else 40 if hour < 22 else 25)


def expected_buy_yen(days: list[date]) -> str:
    exact = sum(half_hour_profile(s)["grid_import"] * price_of(d, s) for d in days for s in range(48))
    return f"{exact.quantize(Decimal(1), rounding=ROUND_DOWN):,}"


async def set_segment(page, i: int, day: str, start: str, end: str, price: str) -> None:
    await page.select_option(f"select[name=buy_day_{i}]", day)
    await page.select_option(f"select[name=buy_start_{i}]", start)
    await page.select_option(f"select[name=buy_end_{i}]", end)
    await page.fill(f"input[name=buy_price_{i}]", price)


async def test_owner_proves_the_device_and_reads_day_month_and_year_with_fees_in_chromium(
        runtime, browser_page, runtime_kind):
    page = browser_page
    async with live_portal(runtime, ["identity", "billing", "metering"]) as (url, host):
        await host.service("identity").create_agency("energy-shop@example.jp", "password123",
                                                     AgencyProfile(company="見守り電力"))
        # the agency registers the PPA customer and reads the auth code it hands the household
        await page.goto(f"{url}/agency/login")
        await page.fill("#email", "energy-shop@example.jp")
        await page.fill("#password", "password123")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{url}/agency/")
        await page.goto(f"{url}/agency/customers/new")
        for field, value in (("#customer_suffix", "20240501"), ("#serial_number", "ESS-HOME-0001"),
                             ("#name", "日見 太郎"), ("#contract_start", "2024-04-01"), ("#base_fee", "980"),
                             ("#sell_unit_price", "16.00"), ("#usage_unit_price", "27.00")):
            await page.fill(field, value)
        await page.click("button[type=submit]:has-text('登録')")
        await page.wait_for_selector("#auth_code")
        code = (await page.inner_text("#auth_code")).strip()
        metering = host.service("metering")
        assert await eventually(lambda: metering.devices.authenticate("ESS-HOME-0001", code), timeout=60)

        # the device pushes four days of half-hour registers
        async with httpx.AsyncClient(base_url=url) as device:
            pushed = await device.post("/api/v1/devices/ESS-HOME-0001/readings", json={"readings": readings()},
                                       headers={"Authorization": f"Bearer {code}"})
        assert pushed.status_code == 202, pushed.text

        async def projected():
            found = await metering.intervals.months_of("ESS-HOME-0001", ["2024-05"])
            return found and len(found[0]["days"]) == 6 and found[0]["days"]["07"]["totals"]["pv_generation"] != \
                "0.000" or None

        assert await eventually(projected, timeout=90)

        # the owner logs in, sets 電力料金情報 with five segments, and proves the device
        await host.service("identity").owners.register(OWNER, "Passw0rd2024", "Passw0rd2024", "10.9.9.9")
        await page.goto(f"{url}/mypage/login")
        await page.fill("#email", OWNER["email"])
        await page.fill("#password", "Passw0rd2024")
        await page.click("button[type=submit]:has-text('ログイン')")
        await page.wait_for_url(f"{url}/mypage/")
        await page.goto(f"{url}/mypage/profile/edit")
        await page.fill("#sell_price", "16")
        for i, segment in enumerate(SEGMENTS):
            await set_segment(page, i, *segment)
        await page.click("#confirm-button")
        await page.wait_for_selector("text=入力内容を確認し")
        await page.click("button:has-text('変更する')")
        await page.wait_for_url(f"{url}/mypage/profile/done")

        await page.goto(f"{url}/mypage/products/new")
        await page.fill("#system_model", "ESS-U4X1")
        await page.fill("#system_serial", "ESS-HOME-0001")
        await page.fill("#install_postal_code", "1030026")
        await page.fill("#auth_code", "WRONGCODE0000000")
        for field in ("watch_service", "weather_alert_control", "early_warning_control", "ai_control"):
            await page.check(f"input[name={field}][value={'yes' if field == 'watch_service' else 'no'}]")
        await page.click("button[type=submit]:has-text('登録する')")
        await page.wait_for_selector("#auth_code-error, .field-error")
        assert "システム製造番号または認証コードが正しくありません。" in await page.inner_text("main")
        await screenshot(page, f"owner_energy_proof_refused_{runtime_kind}")
        await page.fill("#auth_code", code)
        await page.click("button[type=submit]:has-text('登録する')")
        await page.wait_for_url(f"{url}/mypage/profile?done=product_registered")
        assert "連携済み" in await page.inner_text("main")

        await page.goto(f"{url}/mypage/")
        await page.click("text=電力データを見る（システム製造番号 ESS-HOME-0001）")
        await page.wait_for_url(re.compile(r".*/mypage/energy/\d+$"))
        energy = page.url
        await page.fill("#at", "2024-05")
        await page.click("form.period-nav button[type=submit]")
        await page.wait_for_url("**at=2024-05")
        # 05-02 … 05-07: the registers stand still from 05-05 00:00 to 05-07 00:00; 05-08's lone 00:00 reading
        # closes 05-07 and makes no day of its own
        assert await page.locator("table.energy tbody tr").count() == 6
        assert await page.inner_text("#buy-fee td >> nth=-1") == expected_buy_yen(DAYS)
        assert await page.locator("table.fees tr.segment").count() == 5
        await screenshot(page, f"owner_energy_month_{runtime_kind}")

        await page.click("table.energy a:has-text('5/3')")
        await page.wait_for_url("**view=day&at=2024-05-03")
        assert await page.locator("table.energy tbody tr").count() == 48
        assert await page.locator("svg.chart rect.bar.generation").count() == 48
        # 憲法記念日: every half hour at the 土日祝 price
        assert await page.inner_text("#period-title") == "2024年5月3日（金・土日祝料金）"
        assert await page.inner_text("#buy-fee td >> nth=-1") == expected_buy_yen([date(2024, 5, 3)])
        holiday_row = await page.inner_text("table.fees tr.segment >> nth=4")
        assert "土日祝" in holiday_row
        await screenshot(page, f"owner_energy_day_holiday_{runtime_kind}")
        await page.click("#previous")
        await page.wait_for_url("**view=day&at=2024-05-02")
        assert await page.inner_text("#buy-fee td >> nth=-1") == expected_buy_yen([date(2024, 5, 2)])
        await screenshot(page, f"owner_energy_day_{runtime_kind}")

        await page.click("#view-year")
        await page.wait_for_url("**view=year&at=2024")
        assert await page.locator("table.energy tbody tr").count() == 1
        assert await page.inner_text("#buy-fee td >> nth=-1") == expected_buy_yen(DAYS)
        assert "%" in await page.inner_text("#self-sufficiency-ratio")
        await screenshot(page, f"owner_energy_year_{runtime_kind}")
        async with page.expect_download() as download:
            await page.click("#csv")
        path = await (await download.value).path()
        assert open(path, "rb").read().startswith("\ufeff月,発電量(kWh)".encode())
        assert energy.startswith(url)

        # the agency issues the household's May invoice; the owner opens its PDF from My Page
        async with httpx.AsyncClient(base_url=url) as api:
            token = (await api.post("/api/v1/auth/token", data={"username": "energy-shop@example.jp",
                                                                "password": "password123"})).json()["access_token"]
            bearer = {"Authorization": f"Bearer {token}"}
            assert (await api.put("/api/v1/billing/settings", headers=bearer, json={
                "closing_day": "末日", "rounding": "half_up", "issuer_name": "見守り電力株式会社",
                "issuer_address": "東京都中央区日本橋兜町1-13", "registration_number": "T1234567890123"})).status_code == 200

            async def issued():
                r = await api.post("/api/v1/invoices/24051120240501/issue", headers=bearer)
                return r.status_code == 201 or None

            assert await eventually(issued, timeout=60)
        await page.goto(energy)
        await page.click("#invoices")
        await page.click("text=24051120240501")
        await page.wait_for_selector("#invoice-status")
        assert await page.inner_text("#invoice-status") == "発行済"
        await screenshot(page, f"owner_energy_invoice_{runtime_kind}")
        async with page.expect_download() as download:
            await page.click("#pdf-1")
        assert open(await (await download.value).path(), "rb").read().startswith(b"%PDF")
