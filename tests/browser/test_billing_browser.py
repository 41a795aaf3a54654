"""Customer → invoice screens in a real browser: register a customer, see its invoices, issue one, find it in
請求管理; screenshots of each screen under artifacts/screenshots/."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile
from ppa_contracts.metering import DailyUsageComputed, DailyValues
from ppa_contracts.topics import METERING_DAILY_USAGE
from support import live_portal, screenshot

pytestmark = pytest.mark.browser
DAYS = [("2024-01-21", "16.20", "11.10"), ("2024-01-22", "13.50", "8.20"), ("2024-01-23", "44.20", "35.90"),
        ("2024-01-24", "46.00", "35.00"), ("2024-01-25", "46.30", "40.40"), ("2024-01-26", "44.50", "34.00"),
        ("2024-01-27", "36.00", "30.60")]  # the seed's 請求管理/詳細 daily rows


def usage(agency_id: str, day: str, gen: str, sold: str) -> Envelope:
    g, s, z = Decimal(gen), Decimal(sold), Decimal("0")
    values = DailyValues(generation_kwh=g, sold_kwh=s, usage_kwh=g - s, import_kwh=z, battery_charge_kwh=z,
                         battery_discharge_kwh=z, estimated=False, reset=False, usage_clamped=False)
    return Envelope.wrap(DailyUsageComputed(agency_id=agency_id, customer_number="1120220110", serial_number="S1",
                                            date=date.fromisoformat(day), values=values),
                         subject="1120220110", correlation_id="browser", aggregate_version=1)


async def test_customer_to_invoice_screens_in_chromium(runtime, browser_page, runtime_kind):
    page = browser_page
    async with live_portal(runtime, ["identity", "billing"]) as (url, host):
        host.service("billing").invoice_list.today = lambda: date(2024, 1, 27)  # 2024/01, the seed's month
        agency_id = await host.service("identity").create_agency("shop@example.jp", "password123",
                                                                 AgencyProfile(company="ブラウザ電力"))
        await page.goto(f"{url}/agency/login")
        await page.fill("#email", "shop@example.jp")
        await page.fill("#password", "password123")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{url}/agency/")

        await page.goto(f"{url}/agency/settings/billing")
        await page.get_by_label("発行者名").fill("ブラウザ電力株式会社")
        await page.get_by_label("発行者住所").fill("東京都中央区日本橋兜町1-13")
        await page.get_by_label("登録番号（適格請求書発行事業者）").fill("T12345")
        await page.click("form[action='/agency/settings/billing'] button[type=submit]")
        assert "半角数字13桁" in await page.inner_text("#registration_number-error")
        await page.get_by_label("登録番号（適格請求書発行事業者）").fill("T1234567890123")
        await page.click("form[action='/agency/settings/billing'] button[type=submit]")
        await page.wait_for_selector("text=事業者設定を保存しました。")
        await screenshot(page, f"billing_settings_{runtime_kind}")

        await page.goto(f"{url}/agency/customers")
        await page.click("text=新規登録")
        await page.get_by_label("顧客番号").fill("20220110")
        await page.get_by_label("製造番号").fill("S1")
        await page.get_by_label("氏名", exact=True).fill("顧客0170")
        await page.get_by_label("氏名(カナ)").fill("コキヤク0170")
        await page.get_by_label("契約開始日").fill("2024-01-16")
        await page.get_by_label("契約終了日").fill("2034-01-15")
        await page.get_by_label("基本料金").fill("0")
        await page.get_by_label("売電単価").fill("16.00")
        await page.get_by_label("利用単価").fill("abc")
        await page.click("form.form-grid button[type=submit]")
        assert "利用単価は0以上の数値" in await page.inner_text("#usage_unit_price-error")
        await screenshot(page, f"customer_new_error_{runtime_kind}")
        await page.get_by_label("利用単価").fill("27.00")
        await page.click("form.form-grid button[type=submit]")
        await page.wait_for_url(f"{url}/agency/customers/1120220110?done=registered")
        assert len(await page.inner_text("#auth_code")) == 16
        await screenshot(page, f"customer_edit_{runtime_kind}")

        await runtime.bus.publish(METERING_DAILY_USAGE, [usage(agency_id, *d) for d in DAYS])
        await page.goto(f"{url}/agency/customers")
        await screenshot(page, f"customer_list_{runtime_kind}")
        await page.get_by_label("1120220110 の請求一覧").click()
        await page.wait_for_url(f"{url}/agency/customers/1120220110/invoices")
        for _ in range(100):
            if "24011120220110" in await page.content():
                break
            await page.wait_for_timeout(200)
            await page.reload()
        await screenshot(page, f"customer_invoices_{runtime_kind}")
        await page.click("text=24011120220110")
        await page.wait_for_url(f"{url}/agency/customers/1120220110/invoices/24011120220110")
        info = await page.inner_text("table.info")
        assert "2024/01/16 ~ 2034/01/15" in info and "246.70 kWh" in info and "195.20 kWh" in info
        assert await page.locator("svg.chart rect.bar").count() == 3 * len(DAYS)
        assert (await page.locator("table.daily tbody tr").first.inner_text()).startswith("2024/01/27")
        page.on("dialog", lambda dialog: dialog.accept())
        await page.click("#issue-button")  # a confirmation first: what is mailed to whom
        await page.wait_for_selector("text=請求書発行の確認 (24011120220110)")
        assert "第1版" in await page.inner_text("table.info")
        await screenshot(page, f"invoice_issue_confirm_{runtime_kind}")
        await page.click("#confirm-issue-button")
        await page.wait_for_selector("text=請求書を発行しました")
        assert await page.inner_text("#invoice-status") == "発行済"
        await screenshot(page, f"customer_invoice_detail_issued_{runtime_kind}")

        await page.click("nav >> text=請求管理")
        await page.get_by_label("利用月").fill("2024/01")
        await page.click("form.search button[type=submit]")
        await page.wait_for_selector("text=全 1 件")
        row = await page.inner_text("table.invoices tbody tr")
        # 51.50 kWh x 27.00 = 1,390.50 → 1,391 (half up); 195.20 x 16.00 = 3,123.20 → 3,123
        assert "1,391" in row and "3,123" in row and "発行済" in row
        await screenshot(page, f"invoice_list_{runtime_kind}")
        await page.click("table.invoices >> text=24011120220110")
        await page.wait_for_selector("text=請求管理 - 詳細 (24011120220110)")
        await page.click("#void-button")
        await page.wait_for_selector("text=請求を取り消しました。")
        assert await page.inner_text("#invoice-status") == "取消"
        await screenshot(page, f"invoice_detail_voided_{runtime_kind}")
        # issued again after the void: 第2版, confirmed like the first issue
        assert await page.inner_text("#issue-button") == "再発行（第2版）"
        await page.click("#issue-button")
        await page.wait_for_selector("text=第2版・取消後の再発行")
        await page.click("#confirm-issue-button")
        await page.wait_for_selector("text=請求書を発行しました")
        assert await page.inner_text("#invoice-status") == "発行済"
        assert "第2版" in await page.inner_text(".status-line")
        await screenshot(page, f"invoice_detail_reissued_{runtime_kind}")
