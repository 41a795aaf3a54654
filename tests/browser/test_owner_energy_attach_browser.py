"""「電力データを見る」 through the agency-attach path in a real browser: an agency's PPA customer pushes two days of
half-hour registers, the owner registers on My Page and allows the agency's e-mail, the agency approves the
request and attaches the customer on 顧客管理 → オーナー連携, the owner is mailed and reads the day, month and year
views with the fees without ever proving the device; screenshots under artifacts/."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal

import httpx
import pytest
from linking_support import mail_to

from ppa_contracts.identity import AgencyProfile
from support import eventually, live_portal, screenshot

pytestmark = pytest.mark.browser
JST = timezone(timedelta(hours=9))
AGENCY, AGENCY_PASSWORD = "attach-shop@example.jp", "password123"
OWNER_EMAIL, OWNER_PASSWORD = "attached-owner@example.jp", "Passw0rd2024"
SERIAL, NUMBER = "ESS-ATTACH-0001", "1120240502"
SIGNUP = {"#family_name": "日見", "#given_name": "花子", "#family_name_kana": "ニチコン", "#given_name_kana": "ハナコ",
          "#nickname": "ハナコ", "#postal_code": "1030026", "#city": "中央区", "#street": "日本橋兜町",
          "#phone": "0336667945", "#email": OWNER_EMAIL, "#password": OWNER_PASSWORD,
          "#password_confirm": OWNER_PASSWORD}
# 2024-05-02 Thursday (平日 30 円/kWh), 05-03 憲法記念日 (土日祝 22 円/kWh); 売電 16 円/kWh
DAYS = [date(2024, 5, 2), date(2024, 5, 3)]
PRICES = {date(2024, 5, 2): Decimal(30), date(2024, 5, 3): Decimal(22)}
SELL = Decimal(16)


def half_hour(slot: int) -> dict[str, Decimal]:
    """A home's half hour: sun from 06:00 to 18:00 exporting around noon, more bought at night than by day."""
    sun = max(0, 12 - abs(slot - 24)) * Decimal("0.15")
    return {"pv_generation": sun, "grid_export": max(sun - Decimal("0.8"), Decimal(0)),
            "grid_import": Decimal("0.40") if slot < 14 or slot >= 36 else Decimal("0.05")}


def readings() -> list[dict]:
    """Cumulative registers every half hour through both days, with each day's closing midnight."""
    out, totals = [], dict.fromkeys(half_hour(0), Decimal("500.00"))
    for day in DAYS:
        start = datetime(day.year, day.month, day.day, tzinfo=JST)
        for slot in range(49):
            at = (start + timedelta(minutes=30 * slot)).isoformat()
            out += [{"at": at, "channel": c, "kwh": f"{v:.2f}"} for c, v in totals.items()]
            if slot < 48:
                totals = {c: totals[c] + half_hour(slot)[c] for c in totals}
    return out


def yen(exact: Decimal) -> str:
    return f"{exact.quantize(Decimal(1), rounding=ROUND_DOWN):,}"


def buy_yen(days: list[date]) -> str:
    return yen(sum(half_hour(s)["grid_import"] * PRICES[d] for d in days for s in range(48)))


def kwh_total(channel: str, days: list[date]) -> str:
    return f"{sum(half_hour(s)[channel] for _ in days for s in range(48)):,.2f}"


def sell_yen(days: list[date]) -> str:
    return yen(sum(half_hour(s)["grid_export"] * SELL for _ in days for s in range(48)))


async def test_agency_attaches_its_customer_and_the_owner_reads_day_month_and_year_in_chromium(
        runtime, settings, browser_page, runtime_kind):
    agency = browser_page
    async with live_portal(runtime, ["identity", "linking", "notify", "billing", "metering"]) as (url, host):
        await host.service("identity").create_agency(AGENCY, AGENCY_PASSWORD, AgencyProfile(company="見守り電力"))
        # setup through the API: the agency's PPA customer, and its device pushing two days of registers
        async with httpx.AsyncClient(base_url=url) as api:
            token = (await api.post("/api/v1/auth/token", data={"username": AGENCY, "password": AGENCY_PASSWORD})
                     ).json()["access_token"]
            created = await api.post("/api/v1/customers", headers={"Authorization": f"Bearer {token}"}, json={
                "customer_number": NUMBER, "serial_number": SERIAL, "name": "日見 花子", "base_fee": "980",
                "sell_unit_price": "16.00", "usage_unit_price": "27.00", "contract_start": "2024-04-01"})
            assert created.status_code == 201, created.text
            code = created.json()["auth_code"]
            metering = host.service("metering")
            assert await eventually(lambda: metering.devices.authenticate(SERIAL, code), timeout=60)
            pushed = await api.post(f"/api/v1/devices/{SERIAL}/readings", json={"readings": readings()},
                                    headers={"Authorization": f"Bearer {code}"})
            assert pushed.status_code == 202, pushed.text

        async def projected():
            found = await metering.intervals.months_of(SERIAL, ["2024-05"])
            return found and found[0]["days"].get("03", {}).get("totals", {}).get("pv_generation") == "21.600" or None

        assert await eventually(projected, timeout=60)

        # the owner, in a browser of its own, registers on My Page and allows the agency with its prices
        owner_context = await agency.context.browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo",
                                                                 viewport={"width": 1280, "height": 900})
        owner = await owner_context.new_page()
        owner.set_default_timeout(20_000)
        await owner.goto(f"{url}/mypage/login")
        await owner.click("text=新規会員登録はこちら")
        for selector, value in SIGNUP.items():
            await owner.fill(selector, value)
        await owner.select_option("#prefecture", "東京都")
        await owner.check("input[name=info_opt_in][value=no]")
        await owner.click("button[type=submit]:has-text('登録する')")
        await owner.wait_for_selector("text=仮登録メール送信")
        registration = await mail_to(settings, OWNER_EMAIL, "会員仮登録のご案内")
        await owner.goto(url + re.search(r"https?://\S+?(/mypage/register/\S+)", registration.get_content()).group(1))
        await owner.click("#complete-registration")
        await owner.wait_for_url(f"{url}/mypage/?done=registered")
        assert await owner.locator("a[href^='/mypage/energy/']").count() == 0  # no home yet
        await owner.goto(f"{url}/mypage/profile/edit")
        await owner.fill("input[name=agency_email] >> nth=0", AGENCY)
        await owner.fill("#sell_price", "16")
        for i, (day, price) in enumerate((("weekday", "30"), ("holiday", "22"))):
            await owner.select_option(f"select[name=buy_day_{i}]", day)
            await owner.select_option(f"select[name=buy_start_{i}]", "00:00")
            await owner.select_option(f"select[name=buy_end_{i}]", "00:00")
            await owner.fill(f"input[name=buy_price_{i}]", price)
        await owner.click("#confirm-button")
        await owner.wait_for_selector("text=入力内容を確認し")
        await owner.click("button:has-text('変更する')")
        await owner.wait_for_url(f"{url}/mypage/profile/done")

        # the agency opens the request from its mail and approves it
        request = await mail_to(settings, AGENCY, "新規メールアドレス登録用リンク")
        link_id = re.search(r"^http\S+/agency_admin/(\d+)$", request.get_content(), re.M).group(1)
        await agency.goto(f"{url}/agency/login")
        await agency.fill("#email", AGENCY)
        await agency.fill("#password", AGENCY_PASSWORD)
        await agency.click("form[action='/agency/login'] button[type=submit]")
        await agency.wait_for_url(f"{url}/agency/")
        await agency.goto(f"{url}/agency_admin/{link_id}")
        await agency.get_by_role("button", name="連携を許可", exact=True).click()
        await agency.wait_for_selector("text=オーナー様情報との連携に成功しました！")

        # 登録ユーザー一覧 shows the owner's # (the ID the attach form asks for)
        async def listed():
            await agency.goto(f"{url}/agency/users")
            return OWNER_EMAIL in await agency.inner_text("table.users") or None

        await eventually(listed)
        user_number = (await agency.inner_text("table.users tbody tr >> nth=0 >> td.num")).strip()
        assert user_number == link_id

        # 顧客管理 → the customer → オーナー連携: a wrong ID is refused, the owner's ID attaches the home
        await agency.goto(f"{url}/agency/")
        await agency.click("a:has-text('顧客管理')")
        await agency.wait_for_url(f"{url}/agency/customers")
        await agency.click(f"a:has-text('{NUMBER}')")
        await agency.wait_for_url(f"{url}/agency/customers/{NUMBER}")
        await agency.fill("#link_id", "999999")
        await agency.click("form.owner-link button[type=submit]")
        await agency.wait_for_selector("#owner_link-error")
        assert await agency.inner_text("#owner_link-error") == "連携を許可したユーザーのID（#の番号）を入力してください。"
        await screenshot(agency, f"owner_attach_refused_{runtime_kind}")
        await agency.fill("#link_id", f"#{user_number}")
        await agency.locator("form.owner-link").scroll_into_view_if_needed()
        await screenshot(agency, f"owner_attach_form_{runtime_kind}")
        await agency.click("form.owner-link button[type=submit]")
        await agency.wait_for_url(f"{url}/agency/customers/{NUMBER}?done=owner_linked")
        assert "オーナー様のマイページに電力データを連携し、メールでお知らせしました。" in await agency.inner_text("main")
        await screenshot(agency, f"owner_attach_done_{runtime_kind}")

        mail = await mail_to(settings, OWNER_EMAIL, "電力データの連携のお知らせ")
        assert SERIAL in mail.get_content() and f"見守り電力（{AGENCY}）" in mail.get_content()

        # the owner's own login: 電力データを見る for the attached home, with the fees of its own prices
        await owner.goto(f"{url}/mypage/")
        await owner.click(f"text=電力データを見る（システム製造番号 {SERIAL}）")
        await owner.wait_for_url(re.compile(r".*/mypage/energy/\d+$"))
        assert await owner.inner_text("#serial") == SERIAL
        await owner.fill("#at", "2024-05")
        await owner.click("form.period-nav button[type=submit]")
        await owner.wait_for_url("**at=2024-05")
        assert await owner.inner_text("#buy-fee td >> nth=-1") == buy_yen(DAYS)
        assert await owner.inner_text("#sell-fee td >> nth=-1") == sell_yen(DAYS)
        assert await owner.locator("table.fees tr.segment").count() == 2
        # 合計 row: 発電量, 売電量, 買電量 of both days (05-04 holds only the closing registers)
        totals = [(await owner.inner_text(f"table.energy tr.totals td >> nth={i}")) for i in range(3)]
        assert totals == [kwh_total(c, DAYS) for c in ("pv_generation", "grid_export", "grid_import")]
        await screenshot(owner, f"owner_attach_month_{runtime_kind}")

        await owner.click("table.energy a:has-text('5/3')")
        await owner.wait_for_url("**view=day&at=2024-05-03")
        assert await owner.locator("table.energy tbody tr").count() == 48
        assert await owner.inner_text("#period-title") == "2024年5月3日（金・土日祝料金）"
        assert await owner.inner_text("#buy-fee td >> nth=-1") == buy_yen([date(2024, 5, 3)])
        await screenshot(owner, f"owner_attach_day_{runtime_kind}")
        await owner.click("#previous")
        await owner.wait_for_url("**view=day&at=2024-05-02")
        assert await owner.inner_text("#buy-fee td >> nth=-1") == buy_yen([date(2024, 5, 2)])

        await owner.click("#view-year")
        await owner.wait_for_url("**view=year&at=2024")
        assert await owner.locator("table.energy tbody tr").count() == 1
        assert await owner.inner_text("#buy-fee td >> nth=-1") == buy_yen(DAYS)
        assert await owner.inner_text("#sell-fee td >> nth=-1") == sell_yen(DAYS)
        await screenshot(owner, f"owner_attach_year_{runtime_kind}")

        # the owner sees who attached it on お客様情報
        await owner.goto(f"{url}/mypage/profile")
        assert "販売店・業者様から連携されたご自宅" in await owner.inner_text("main")
        await owner_context.close()
