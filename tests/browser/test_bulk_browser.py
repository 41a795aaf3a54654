"""Bulk work in a real browser: 顧客管理 → CSV一括登録 of a 300-row Shift_JIS file whose 3 bad rows the preview
names and the import leaves out; then 請求管理 → every matching invoice (50) selected and issued in one confirmed
action: 50 PDFs stored and 50 mails accepted by a real SMTP server (aiosmtpd). Both runtimes; screenshots."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile
from ppa_contracts.metering import DailyUsageComputed, DailyValues
from ppa_contracts.topics import METERING_DAILY_USAGE
from support import eventually, live_portal, make_settings, screenshot

pytestmark = pytest.mark.browser
HEADER = "顧客番号,製造番号,氏名,氏名(カナ),契約開始日,契約終了日,基本料金(円),売電単価(円),利用単価(円),メールアドレス"
BAD = {141: "1120240141,BRW0141,顧客0141,,2024/01/01,,980,16.00,二十七,c141@example.jp",
       142: "1120240142,BRW0142,,,2024/01/01,,980,16.00,27.00,c142@example.jp",
       243: "1120240243,BRW0001,顧客0243,,2024/01/01,,980,16.00,27.00,c243@example.jp"}  # serial of row 1


@pytest.fixture
def settings(runtime_kind: str, tmp_path: Path, request: pytest.FixtureRequest, inbox):
    servers = request.getfixturevalue("servers") if runtime_kind == "distributed" else None
    return make_settings(runtime_kind, tmp_path, servers, smtp_host="127.0.0.1", smtp_port=inbox[1])


def customers_file(tmp_path: Path) -> Path:
    # the first 50 (those with a day in 2024/01) under contract since 2024/01/01, the others from 2024/02 (a month
    # after the test's today): 2024/01 lists exactly the 50
    rows = [BAD.get(n, f"1120240{n:03d},BRW{n:04d},顧客{n:04d},コキャク,{'2024/01/01' if n <= 50 else '2024/02/16'},,"
                       f"980,16.00,27.00,c{n}@example.jp") for n in range(1, 301)]
    path = tmp_path / "顧客一覧.csv"
    path.write_bytes(("\r\n".join([HEADER, *rows]) + "\r\n").encode("cp932"))  # as Excel saves it
    return path


def usage(agency_id: str, number: str) -> Envelope:
    g, s, z = Decimal("10.00"), Decimal("4.00"), Decimal(0)
    values = DailyValues(generation_kwh=g, sold_kwh=s, usage_kwh=g - s, import_kwh=z, battery_charge_kwh=z,
                         battery_discharge_kwh=z, estimated=False, reset=False, usage_clamped=False)
    return Envelope.wrap(DailyUsageComputed(agency_id=agency_id, customer_number=number, serial_number="x",
                                            date=date(2024, 1, 20), values=values),
                         subject=number, correlation_id="browser", aggregate_version=1)


async def test_import_300_rows_and_issue_50_invoices_in_one_action(runtime, browser_page, runtime_kind, inbox,
                                                                   tmp_path):
    page, (handler, _) = browser_page, inbox
    async with live_portal(runtime, ["identity", "billing", "notify"]) as (url, host):
        host.service("billing").invoice_list.today = lambda: date(2024, 1, 20)  # 2024/01 is the current month
        agency_id = await host.service("identity").create_agency("bulk@example.jp", "password123",
                                                                 AgencyProfile(company="一括電力"))
        await page.goto(f"{url}/agency/login")
        await page.fill("#email", "bulk@example.jp")
        await page.fill("#password", "password123")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{url}/agency/")
        await page.goto(f"{url}/agency/settings/billing")
        await page.get_by_label("発行者名").fill("一括電力株式会社")
        await page.get_by_label("発行者住所").fill("東京都中央区日本橋兜町1-13")
        await page.click("form[action='/agency/settings/billing'] button[type=submit]")
        await page.wait_for_selector("text=事業者設定を保存しました。")

        await page.goto(f"{url}/agency/customers")
        await page.click("text=CSV一括登録")
        await page.get_by_label("CSVファイル").set_input_files(str(customers_file(tmp_path)))
        await page.click("text=内容を確認する")
        await page.wait_for_selector("#count-new")
        assert await page.inner_text("#count-new") == "297" and await page.inner_text("#count-error") == "3"
        errors = await page.locator("tr.import-error").all_inner_texts()
        assert len(errors) == 3
        assert "利用単価(円): 利用単価は0以上の数値" in errors[0] and "1120240141" in errors[0]
        assert "氏名: 氏名を入力してください。" in errors[1]
        assert "製造番号: 2行目と同じ製造番号です。" in errors[2]
        await screenshot(page, f"customer_import_preview_{runtime_kind}")
        await page.goto(f"{url}/agency/customers")
        assert "全 0 件" in await page.inner_text("p.count")  # the preview wrote nothing
        await page.go_back()
        await page.click("text=297 件を取り込む")
        await page.wait_for_selector("#import-done", timeout=90_000)
        assert "新規 297 件、変更 0 件、変更なし 0 件、エラー 3 件" in await page.inner_text("#import-done")
        await screenshot(page, f"customer_import_done_{runtime_kind}")
        await page.click("text=顧客管理 - 一覧へ")
        assert "全 297 件" in await page.inner_text("p.count")

        numbers = [f"1120240{n:03d}" for n in range(1, 51)]
        await runtime.bus.publish(METERING_DAILY_USAGE, [usage(agency_id, n) for n in numbers])

        async def listed():
            await page.goto(f"{url}/agency/invoices?month=2024/01")
            return "全 50 件" in await page.inner_text("p.count")

        await eventually(listed, timeout=240)  # the invoice list consumer applies 297 registrations first
        await page.get_by_label("検索に一致する全 50 件を選択").check()
        await page.click("#invoice-selection button[value=issue]")
        # 6.00 kWh sold x 16.00 = 96, 6.00 kWh used x 27.00 = 162, + 980: 1,142 each
        assert "50 件の請求書を発行し" in await page.inner_text("#issue-summary")
        assert "合計 57,100 円" in await page.inner_text("#issue-summary")
        await screenshot(page, f"invoice_issue_confirm_{runtime_kind}")
        await page.click("text=50 件を発行する")
        await page.wait_for_selector("#issue-done", timeout=180_000)
        assert "発行 50 件" in await page.inner_text("#issue-done")
        await screenshot(page, f"invoice_issue_done_{runtime_kind}")

        mails = await _mails(handler, 50)
        assert sorted(m["To"] for m in mails) == sorted(f"c{int(n[-3:])}@example.jp" for n in numbers)
        assert all(any(p.get_content_type() == "application/pdf" for p in m.iter_attachments()) for m in mails)
        documents = host.service("billing").docs.collection("invoice_documents")
        assert await documents.count({"agency_id": agency_id}) == 50


async def _mails(handler, count: int, timeout: float = 120) -> list:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(handler.messages) < count and loop.time() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)  # a 51st (a second mail of one invoice) would have come with the others
    assert len(handler.messages) == count, len(handler.messages)
    return handler.messages
