"""The agency portal's billing pages as a person uses them: settings, customers, invoices, issue and void;
CSRF on every form, Japanese messages, seed formats, CSV headers, and another agency kept out."""

from __future__ import annotations

import asyncio
import re
from datetime import date
from decimal import Decimal

import httpx
import pytest
from agency_site import Agency, csrf_of

from ppa.platform import build_host
from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfile
from ppa_contracts.metering import DailyUsageComputed, DailyValues
from ppa_contracts.notify import EmailRequested
from ppa_contracts.topics import METERING_DAILY_USAGE
from ppa_gateway.app import create_app

LIST_HEADER = "利用月,請求番号,顧客番号,氏名,基本料金(円),発電量(kWh),売電量(kWh),利用量(kWh),売電料金(円),利用料金(円),利用料金合計(円)"
DETAIL_HEADER = "利用日,発電量(kWh),売電量(kWh),利用量(kWh),売電料金(円),利用料金(円)"
CUSTOMER_HEADER = "顧客番号,製造番号,氏名,氏名(カナ),契約開始日,契約終了日,基本料金(円),売電単価(円),利用単価(円),メールアドレス"
FORM = {"customer_suffix": "20230030", "serial_number": "E2300030", "name": "顧客0151", "name_kana": "コキヤク0151",
        "contract_start": "2023-12-16", "contract_end": "2037-12-15", "base_fee": "980",
        "sell_unit_price": "16.00", "usage_unit_price": "27.00", "notes": "パネル 5.5kW", "email": ""}


class Today:
    """The JST day billing's month list takes as today (its current billing month), as a test sets it."""

    day = date(2024, 1, 20)

    def __call__(self) -> date:
        return self.day


TODAY = Today()


@pytest.fixture
async def site(runtime):
    host = build_host(runtime, ["identity", "billing"])
    app = create_app(host)
    TODAY.day = date(2024, 1, 20)  # 2024/01: the month the seed's invoice rows are in
    host.service("billing").invoice_list.today = TODAY
    await host.start()
    agencies = {}
    try:
        for who in ("a", "b"):
            agency_id = await host.service("identity").create_agency(f"{who}@example.jp", "password123",
                                                                     AgencyProfile(company=f"{who}電力"))
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
            token = csrf_of((await client.get("/agency/login")).text)
            done = await client.post("/agency/login", data={"email": f"{who}@example.jp", "password": "password123",
                                                            "csrf_token": token})
            assert done.status_code == 303
            agencies[who] = Agency(client, agency_id)
        yield agencies, runtime
    finally:
        for agency in agencies.values():
            await agency.client.aclose()
        await host.stop()


def day(agency_id: str, when: str, gen: str, sold: str) -> Envelope:
    g, s, z = Decimal(gen), Decimal(sold), Decimal("0")
    values = DailyValues(generation_kwh=g, sold_kwh=s, usage_kwh=g - s, import_kwh=z, battery_charge_kwh=z,
                         battery_discharge_kwh=z, estimated=False, reset=False, usage_clamped=False)
    return Envelope.wrap(DailyUsageComputed(agency_id=agency_id, customer_number="1120230030",
                                            serial_number="E2300030", date=date.fromisoformat(when), values=values),
                         subject="1120230030", correlation_id="t", aggregate_version=1)


async def test_pages_need_an_agency_session(site):
    agencies, _ = site
    anonymous = httpx.AsyncClient(transport=agencies["a"].client._transport, base_url="http://t")
    for path in ("/agency/invoices", "/agency/customers", "/agency/customers/new", "/agency/settings/billing",
                 "/agency/invoices/24011120230030", "/agency/customers.csv"):
        r = await anonymous.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/agency/login", path


async def test_settings_page_validates_in_japanese_and_needs_the_forms_token(site):
    a = site[0]["a"]
    page = await a.client.get("/agency/settings/billing")
    assert page.status_code == 200 and '<label for="closing_day">締め日</label>' in page.text
    assert "内消費税 10%" in page.text
    values = {"closing_day": "15", "rounding": "half_up", "issuer_name": "太陽電力株式会社",
              "issuer_address": "東京都中央区", "registration_number": "T123"}
    bad = await a.post("/agency/settings/billing", values, "/agency/settings/billing")
    assert bad.status_code == 422 and "登録番号は「T」に続けて半角数字13桁で入力してください" in bad.text
    assert 'value="T123"' in bad.text
    forged = await a.client.post("/agency/settings/billing", data={**values, "registration_number": "T1234567890123"})
    assert forged.status_code == 403 and "画面の有効期限が切れました" in forged.text
    assert 'value="太陽電力株式会社"' not in (await a.client.get("/agency/settings/billing")).text
    good = await a.post("/agency/settings/billing", {**values, "registration_number": "T1234567890123",
                                                     "closing_day": "end_of_month"}, "/agency/settings/billing")
    assert good.status_code == 303
    saved = (await a.client.get(good.headers["location"])).text
    assert "事業者設定を保存しました。" in saved and 'value="T1234567890123"' in saved
    assert '<option value="end_of_month" selected>末日</option>' in saved


async def test_customer_pages_register_edit_list_and_delete(site):
    agencies, _ = site
    a, b = agencies["a"], agencies["b"]
    new = await a.client.get("/agency/customers/new")
    for label in ("顧客番号", "製造番号", "氏名", "氏名(カナ)", "契約開始日", "契約終了日", "基本料金", "売電単価",
                  "利用単価", "各種情報"):
        assert f">{label}</label>" in new.text, label
    assert "登録後自動生成" in new.text
    bad = await a.post("/agency/customers/new", {**FORM, "customer_suffix": "123", "base_fee": "-1",
                                                  "contract_end": "2020-01-01"})
    assert bad.status_code == 422
    for message in ("顧客番号は11から始まる10桁の数字で入力してください。",
                    "基本料金は0以上の数値（小数点以下2桁まで）で入力してください。",
                    "契約終了日は契約開始日以降の日付を入力してください。"):
        assert message in bad.text
    assert "全 0 件" in (await a.client.get("/agency/customers")).text
    forged = await a.client.post("/agency/customers/new", data=FORM)
    assert forged.status_code == 403 and "全 0 件" in (await a.client.get("/agency/customers")).text

    done = await a.post("/agency/customers/new", FORM)
    assert done.status_code == 303 and done.headers["location"] == "/agency/customers/1120230030?done=registered"
    edit = (await a.client.get(done.headers["location"])).text
    assert "顧客を登録しました。" in edit and re.search(r'<code id="auth_code">[A-Za-z0-9]{16}</code>', edit)
    assert (await a.post("/agency/customers/new", FORM)).status_code == 422  # same number again
    listing = (await a.client.get("/agency/customers", params={"name": "0151"})).text
    assert "全 1 件" in listing and "2023/12/16 ~ 2037/12/15" in listing and ">980<" in listing
    assert "全 0 件" in (await a.client.get("/agency/customers", params={"email": "nobody@"})).text
    csv = await a.client.get("/agency/customers.csv")
    assert csv.content.startswith(b"\xef\xbb\xbf" + CUSTOMER_HEADER.encode() + b"\r\n")
    assert csv.content.decode("utf-8-sig").splitlines()[1] == \
        "1120230030,E2300030,顧客0151,コキヤク0151,2023/12/16,2037/12/15,980,16.00,27.00,"

    changed = await a.post("/agency/customers/1120230030", {**FORM, "usage_unit_price": "28.5"})
    assert changed.status_code == 303
    assert 'value="28.50"' in (await a.client.get("/agency/customers/1120230030")).text
    refused = await a.post("/agency/customers/1120230030", {**FORM, "usage_unit_price": "abc"})
    assert refused.status_code == 422 and "利用単価は0以上の数値" in refused.text

    for path in ("/agency/customers/1120230030", "/agency/customers/1120230030/invoices",
                 "/agency/customers/1120230030/invoices/24011120230030"):
        assert (await b.client.get(path)).status_code == 404, path
    assert (await b.post("/agency/customers/1120230030/delete", {})).status_code == 404
    assert (await b.post("/agency/customers/1120230030", FORM)).status_code == 404
    assert "全 0 件" in (await b.client.get("/agency/customers")).text

    gone = await a.post("/agency/customers/1120230030/delete", {})
    assert gone.status_code == 303 and "全 0 件" in (await a.client.get(gone.headers["location"])).text


async def test_invoice_pages_show_the_seed_formats_and_issue_and_void(site):
    agencies, runtime = site
    a, b = agencies["a"], agencies["b"]
    assert (await a.post("/agency/customers/new", {**FORM, "email": "1120230030@hsppa.info"})).status_code == 303
    await a.post("/agency/settings/billing", {"closing_day": "15", "rounding": "half_up", "issuer_name": "太陽電力",
                                              "issuer_address": "東京都", "registration_number": ""},
                 "/agency/settings/billing")
    await runtime.bus.publish(METERING_DAILY_USAGE, [day(a.agency_id, "2024-01-20", "60.00", "40.00"),
                                                     day(a.agency_id, "2024-02-10", "1056.70", "1035.30")])
    for _ in range(300):
        page = await a.client.get("/agency/invoices", params={"month": "2024/01"})
        if "1,116.70" in page.text:
            break
        await asyncio.sleep(0.1)
    assert "全 1 件" in page.text and "1,116.70" in page.text, re.findall(r"全 \S+ 件", page.text)
    # 1,075.30 kWh x 16.00 = 17,204.80 → 17,205; 41.40 x 27.00 = 1,117.80 → 1,118; + 980
    assert "17,205" in page.text and "2,098" in page.text
    assert re.search(r'<tr class="totals">.*?2,098</td>', page.text, re.S)
    assert "請求管理 - 一覧" in page.text and "一覧ダウンロード【CSV】" in page.text
    assert "全 0 件" in (await a.client.get("/agency/invoices", params={"month": "2024/01", "name": "別人"})).text
    assert "全 1 件" in (await a.client.get("/agency/invoices", params={"month": "2024/01",
                                                                          "invoice_number": "24011120230030"})).text
    assert "全 0 件" in (await a.client.get("/agency/invoices", params={"month": "2024/01",
                                                                          "invoice_number": "23121120230030"})).text
    bad_month = await a.client.get("/agency/invoices", params={"month": "2024/13"})
    assert bad_month.status_code == 422 and "利用月はYYYY/MMの形式で入力してください" in bad_month.text
    # 利用月 as people type it: the same month on the list and the customer's list
    for typed in ("2024-01", "２０２４／０１", " 2024 / 1 ", "2024年1月"):
        listed = await a.client.get("/agency/invoices", params={"month": typed})
        assert listed.status_code == 200 and "全 1 件" in listed.text and 'value="2024/01"' in listed.text, typed
        own = await a.client.get("/agency/customers/1120230030/invoices", params={"month": typed})
        assert own.status_code == 200 and "24011120230030" in own.text, typed
    # with no month asked, the list opens on the latest month that has invoices, not an empty current one
    opened = await a.client.get("/agency/invoices")
    assert 'id="month" name="month" value="2024/01"' in opened.text and "全 1 件" in opened.text
    csv = await a.client.get("/agency/invoices.csv", params={"month": "2024/01"})
    assert csv.content.startswith(b"\xef\xbb\xbf" + LIST_HEADER.encode() + b"\r\n")
    assert csv.content.decode("utf-8-sig").splitlines()[1] == \
        "2024/01,24011120230030,1120230030,顧客0151,980,1116.70,1075.30,41.40,17205,1118,2098"

    detail = (await a.client.get("/agency/invoices/24011120230030")).text
    for text in ("請求管理 - 詳細 (24011120230030)", "2023/12/16 ~ 2037/12/15", "17,205 円", "1,118 円", "2,098 円",
                 "2024/02/10", "<svg", 'class="bar usage_kwh"', "詳細ダウンロード【CSV】", "未発行"):
        assert text in detail, text
    assert detail.index("2024/02/10") < detail.index("2024/01/20")  # newest day first, as in the seed
    detail_csv = await a.client.get("/agency/invoices/24011120230030.csv")
    assert detail_csv.content.decode("utf-8-sig").splitlines()[0] == DETAIL_HEADER

    forged = await a.client.post("/agency/invoices/24011120230030/issue", data={"confirmed": "yes"})
    assert forged.status_code == 403 and "未発行" in forged.text
    unconfirmed = await a.post("/agency/invoices/24011120230030/issue", {}, "/agency/invoices/24011120230030")
    assert unconfirmed.status_code == 303 and "/issue?back=" in unconfirmed.headers["location"]
    assert "未発行" in (await a.client.get("/agency/invoices/24011120230030")).text  # nothing issued, nothing mailed
    issued = await a.post("/agency/invoices/24011120230030/issue", {"confirmed": "yes"},
                          "/agency/invoices/24011120230030")
    assert issued.status_code == 303
    shown = (await a.client.get(issued.headers["location"])).text
    assert "請求書を発行し、お客様にメールで送信しました。" in shown and "発行済" in shown and "第1版" in shown
    pdf = await a.client.get("/agency/invoices/24011120230030.pdf", params={"revision": "1"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    twice = await a.post("/agency/invoices/24011120230030/issue", {"confirmed": "yes"},
                         "/agency/invoices/24011120230030")
    assert twice.status_code == 303 and twice.headers["location"].startswith("/agency/invoices/24011120230030/issue")
    settled = await a.client.get(twice.headers["location"], follow_redirects=True)
    assert settled.url.path == "/agency/invoices/24011120230030" and "第1版" in settled.text and "第2版" not in settled.text

    for path in ("/agency/invoices/24011120230030", "/agency/invoices/24011120230030.pdf",
                 "/agency/invoices/24011120230030.csv"):
        assert (await b.client.get(path)).status_code == 404, path
    assert (await b.post("/agency/invoices/24011120230030/void", {}, "/agency/invoices")).status_code == 404
    assert "全 0 件" in (await b.client.get("/agency/invoices", params={"month": "2024/01"})).text

    voided = await a.post("/agency/invoices/24011120230030/void", {"back": "/agency/customers/1120230030/invoices/"
                                                                            "24011120230030"},
                          "/agency/invoices/24011120230030")
    assert voided.headers["location"] == "/agency/customers/1120230030/invoices/24011120230030?done=voided"
    after = (await a.client.get(voided.headers["location"])).text
    assert "請求を取り消しました。" in after and "取り消されました" in after and "顧客管理 - 請求詳細" in after
    mine = (await a.client.get("/agency/customers/1120230030/invoices")).text
    assert "24011120230030" in mine and "取消" in mine


def csv_links(html: str) -> list[tuple[str, str]]:
    """Each CSV button of a page with the Excel (Shift_JIS) button beside it: (UTF-8 href, Shift_JIS href)."""
    found = re.findall(r'<a class="button secondary" href="([^"]+)">[^<]*【CSV】</a>\s*'
                       r'<a class="button secondary" href="([^"]+)">Excel用 \(Shift_JIS\)</a>', html)
    return [(plain.replace("&amp;", "&"), excel.replace("&amp;", "&")) for plain, excel in found]


async def test_every_csv_button_has_an_excel_copy_and_a_customers_invoices_page_and_download(site):
    agencies, runtime = site
    a = agencies["a"]
    TODAY.day = date(2023, 10, 20)  # the last of the 22 months is the current one
    assert (await a.post("/agency/customers/new", FORM)).status_code == 303
    # one day in each of 22 billing months (closing day 15: the 20th is in its own month's 利用月)
    months = [(2022 + i // 12, i % 12 + 1) for i in range(22)]
    await runtime.bus.publish(METERING_DAILY_USAGE, [day(a.agency_id, f"{y}-{m:02d}-20", "10.00", "4.00")
                                                     for y, m in months])
    for _ in range(300):
        listed = await a.client.get("/agency/customers/1120230030/invoices")
        if "全 22 件" in listed.text:
            break
        await asyncio.sleep(0.1)
    assert "全 22 件" in listed.text and "1 / 2" in listed.text and "次へ ▶</a>" in listed.text
    assert listed.text.count('<tr class="status-') == 20 and "2023/10" in listed.text and "2022/01" not in listed.text
    second = (await a.client.get("/agency/customers/1120230030/invoices", params={"page": "2"})).text
    assert second.count('<tr class="status-') == 2 and "2022/01" in second and "2 / 2" in second
    pages = {"/agency/customers/1120230030/invoices": 1, "/agency/invoices?month=2023/06": 1,
             "/agency/invoices/23061120230030": 1, "/agency/customers": 1}
    for path, expected in pages.items():
        links = csv_links((await a.client.get(path)).text)
        assert len(links) == expected, path
        for plain, excel in links:
            assert excel.startswith(plain) and excel.endswith("encoding=shift_jis"), (path, excel)
            utf8, sjis = await a.client.get(plain), await a.client.get(excel)
            assert utf8.status_code == sjis.status_code == 200, (path, plain)
            assert utf8.content.startswith(b"\xef\xbb\xbf") and not sjis.content.startswith(b"\xef\xbb\xbf")
            assert sjis.headers["content-type"] == "text/csv; charset=shift_jis"
            assert sjis.headers["content-disposition"].endswith('_sjis.csv"')
            assert sjis.content.decode("cp932") == utf8.content.decode("utf-8-sig"), (path, plain)
            assert "発電量(kWh)" in sjis.content.decode("cp932") or "氏名" in sjis.content.decode("cp932")
    mine = await a.client.get("/agency/customers/1120230030/invoices.csv", params={"month": "2023-06"})
    lines = mine.content.decode("utf-8-sig").splitlines()
    assert lines[0] == LIST_HEADER and len(lines) == 2 and lines[1].startswith("2023/06,23061120230030,")
    every = (await a.client.get("/agency/customers/1120230030/invoices.csv")).content.decode("utf-8-sig")
    assert len(every.splitlines()) == 23
    assert (await a.client.get("/agency/customers.csv", params={"encoding": "latin-1"})).status_code == 404
    assert (await agencies["b"].client.get("/agency/customers/1120230030/invoices.csv")).status_code == 404


async def test_issuing_is_confirmed_needs_the_issuer_and_a_voided_invoice_is_issued_again(site):
    agencies, runtime = site
    a = agencies["a"]
    assert (await a.post("/agency/customers/new", {**FORM, "email": "1120230030@hsppa.info"})).status_code == 303
    await runtime.bus.publish(METERING_DAILY_USAGE, [day(a.agency_id, "2024-01-20", "60.00", "40.00")])
    for _ in range(300):
        detail = await a.client.get("/agency/invoices/24011120230030")
        if "60.00" in detail.text:
            break
        await asyncio.sleep(0.1)
    # no issuer yet: the button says what is missing and leads to 事業者設定, not to a POST that fails
    button = re.search(r'<a class="button" id="issue-button" href="([^"]+)">([^<]+)</a>', detail.text)
    assert button.groups() == ("/agency/settings/billing",
                               "請求書発行: 事業者設定で発行者名・発行者住所を登録してください")
    confirm = await a.client.get("/agency/invoices/24011120230030/issue")
    assert confirm.status_code == 200 and "この請求はまだ発行できません" in confirm.text
    assert 'id="confirm-issue-button"' not in confirm.text and 'href="/agency/settings/billing"' in confirm.text
    refused = await a.post("/agency/invoices/24011120230030/issue", {"confirmed": "yes"},
                           "/agency/invoices/24011120230030")
    assert refused.status_code == 303  # back to the confirmation, which says why
    assert "事業者設定で発行者名・発行者住所を登録してください" in (await a.client.get(refused.headers["location"])).text
    await a.post("/agency/settings/billing", {"closing_day": "15", "rounding": "half_up", "issuer_name": "太陽電力",
                                              "issuer_address": "", "registration_number": ""},
                 "/agency/settings/billing")
    only_address = (await a.client.get("/agency/invoices/24011120230030")).text
    assert "請求書発行: 事業者設定で発行者住所を登録してください" in only_address
    await a.post("/agency/settings/billing", {"closing_day": "15", "rounding": "half_up", "issuer_name": "太陽電力",
                                              "issuer_address": "東京都中央区", "registration_number": ""},
                 "/agency/settings/billing")
    ready = (await a.client.get("/agency/invoices/24011120230030")).text
    link = re.search(r'<a class="button" id="issue-button" href="([^"]+)">請求書発行</a>', ready).group(1)
    shown = (await a.client.get(link.replace("&amp;", "&"))).text
    for text in ("請求書発行の確認 (24011120230030)", "1120230030@hsppa.info", "第1版", "1,520 円",
                 "2024/01分 電気料金のご請求（請求番号 24011120230030）", "発行してメールを送信する", "太陽電力 東京都中央区"):
        assert text in shown, text
    assert "【訂正】" not in shown
    issued = await a.post("/agency/invoices/24011120230030/issue", {"confirmed": "yes"},
                          "/agency/invoices/24011120230030")
    assert issued.headers["location"] == "/agency/invoices/24011120230030?done=issued"
    # voided, then issued again from today's prices as 第2版 with a 【訂正】 mail
    assert (await a.post("/agency/invoices/24011120230030/void", {}, "/agency/invoices/24011120230030")).status_code == 303
    await a.post("/agency/customers/1120230030", {**FORM, "email": "1120230030@hsppa.info", "base_fee": "1000"})
    voided = (await a.client.get("/agency/invoices/24011120230030")).text
    link = re.search(r'<a class="button" id="issue-button" href="([^"]+)">再発行（第2版）</a>', voided).group(1)
    again = (await a.client.get(link.replace("&amp;", "&"))).text
    for text in ("第2版・取消後の再発行", "【訂正】2024/01分 電気料金のご請求", "1,540 円（取消前 1,520 円）",
                 "invoice_24011120230030_r2.pdf"):
        assert text in again, text
    reissued = await a.post("/agency/invoices/24011120230030/issue", {"confirmed": "yes"},
                            "/agency/invoices/24011120230030")
    assert reissued.headers["location"] == "/agency/invoices/24011120230030?done=issued"
    now = (await a.client.get(reissued.headers["location"])).text
    assert "発行済" in now and "第2版" in now and "再発行" in now and "取り消されました" not in now
    pdf = await a.client.get("/agency/invoices/24011120230030.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-disposition"].endswith('_r2.pdf"')
    # the 【訂正】 mail is recorded with the revision (notify renders revision > 1 as 【訂正】, tests/integration/
    # test_invoice_issuing.py reads it off a real SMTP server)
    history = await runtime.eventstore("billing").read(f"invoice:{a.agency_id}:24011120230030")
    mails = [p for p in (e.payload() for e in history) if isinstance(p, EmailRequested)]
    assert [(m.context["revision"], m.recipient) for m in mails][-1] == (2, "1120230030@hsppa.info")
    assert [m.message_id.rsplit("-", 1)[1] for m in mails] == ["r1", "void", "r2"]
