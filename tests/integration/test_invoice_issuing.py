"""Issuing invoices end to end on both runtimes: settings, issue (PDF + mail through a real SMTP server),
a usage revision after issue making revision 2, void, refusals, and other agencies kept out."""

from __future__ import annotations

import asyncio
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pypdf
import pytest
from support import Inbox, make_settings, portal

from ppa_contracts import Envelope
from ppa_contracts.metering import DailyUsageComputed, DailyUsageRevised, DailyValues
from ppa_contracts.topics import METERING_DAILY_USAGE
from ppa_runtime.settings import Settings

NUMBER = "24011120230030"
CUSTOMER = {"customer_number": "1120230030", "serial_number": "E2300030", "name": "顧客0151",
            "base_fee": "980", "sell_unit_price": "16.00", "usage_unit_price": "27.00",
            "contract_start": "2023-12-16", "contract_end": "2037-12-15", "email": "1120230030@hsppa.info"}
SETTINGS = {"closing_day": 15, "rounding": "half_up", "issuer_name": "太陽電力株式会社",
            "issuer_address": "東京都中央区日本橋兜町1-13", "registration_number": "T1234567890123"}


@pytest.fixture
def settings(runtime_kind: str, tmp_path: Path, request: pytest.FixtureRequest, inbox) -> Settings:
    servers = request.getfixturevalue("servers") if runtime_kind == "distributed" else None
    return make_settings(runtime_kind, tmp_path, servers, smtp_host="127.0.0.1", smtp_port=inbox[1])


def values(gen: str, sold: str) -> DailyValues:
    g, s, z = Decimal(gen), Decimal(sold), Decimal("0.000")
    return DailyValues(generation_kwh=g, sold_kwh=s, usage_kwh=g - s, import_kwh=z, battery_charge_kwh=z,
                       battery_discharge_kwh=z, estimated=False, reset=False, usage_clamped=False)


def day_event(agency_id: str, day: str, version: int, new: DailyValues, old: DailyValues | None = None) -> Envelope:
    base = {"agency_id": agency_id, "customer_number": "1120230030", "serial_number": "E2300030",
            "date": date.fromisoformat(day)}
    payload = DailyUsageRevised(**base, old=old, new=new) if old else DailyUsageComputed(**base, values=new)
    return Envelope.wrap(payload, subject="1120230030", correlation_id="t", aggregate_version=version)


async def until(check, what: str, timeout: float = 60):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


@pytest.fixture
async def billing(runtime):
    async with portal(runtime, ["identity", "billing", "notify"]) as p:
        yield p


async def test_settings_are_validated_in_japanese_and_kept_per_agency(billing):
    client, a, b = billing.client, billing.tokens["a"], billing.tokens["b"]
    defaults = (await client.get("/api/v1/billing/settings", headers=a)).json()
    assert defaults == {"closing_day": 15, "rounding": "half_up", "issuer_name": "", "issuer_address": "",
                        "registration_number": None, "prices_include_tax": True, "tax_rate_percent": 10}
    bad = await client.put("/api/v1/billing/settings", headers=a, json={
        **SETTINGS, "closing_day": 29, "rounding": "up", "registration_number": "T12345"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    messages = {e["field"]: e["message"] for e in bad.json()["errors"]}
    assert messages == {"closing_day": "締め日は1日〜28日または末日から選択してください。",
                        "rounding": "端数処理は四捨五入・切り捨て・銀行丸めから選択してください。",
                        "registration_number":
                            "登録番号は「T」に続けて半角数字13桁で入力してください（例: T1234567890123）。"}
    assert (await client.get("/api/v1/billing/settings", headers=a)).json() == defaults
    saved = await client.put("/api/v1/billing/settings", headers=a, json={**SETTINGS, "closing_day": "末日"})
    assert saved.status_code == 200 and saved.json()["closing_day"] == "end_of_month"
    assert (await client.get("/api/v1/billing/settings", headers=a)).json()["issuer_name"] == "太陽電力株式会社"
    assert (await client.get("/api/v1/billing/settings", headers=b)).json() == defaults


async def test_drafts_follow_the_agencys_closing_day_and_rounding(billing, runtime):
    client, a = billing.client, billing.tokens["a"]
    assert (await client.post("/api/v1/customers", json=CUSTOMER, headers=a)).status_code == 201
    agency = billing.agency_ids["a"]
    await runtime.bus.publish(METERING_DAILY_USAGE, [
        day_event(agency, "2024-01-10", 1, values("10.00", "0.00")),   # 2024/01 under 末日, 2023/12 under 15
        day_event(agency, "2024-01-20", 1, values("0.50", "0.00")),
    ])

    async def jan(number: str):
        r = await client.get(f"/api/v1/invoices/{number}", headers=a)
        return r.json() if r.status_code == 200 and len(r.json()["daily"]) >= 1 else None

    dec = await until(lambda: jan("23121120230030"), "the 2023/12 draft has the 10th")
    assert dec["period_end"] == "2024-01-15" and dec["usage_fee"] == "270"
    await client.put("/api/v1/billing/settings", headers=a, json={**SETTINGS, "closing_day": "末日",
                                                                  "rounding": "down"})
    by_month = (await client.get(f"/api/v1/invoices/{NUMBER}", headers=a)).json()
    assert (by_month["period_start"], by_month["period_end"]) == ("2024-01-01", "2024-01-31")
    # 10.50 kWh x 27.00 = 283.50: half up would say 284
    assert by_month["usage_kwh"] == "10.50" and by_month["usage_fee"] == "283" and by_month["total"] == "1263"


async def test_issue_mail_revise_and_void_an_invoice(billing, runtime, inbox):
    client, a, b = billing.client, billing.tokens["a"], billing.tokens["b"]
    handler, _ = inbox
    agency = billing.agency_ids["a"]
    assert (await client.post("/api/v1/customers", json=CUSTOMER, headers=a)).status_code == 201
    refused = await client.post(f"/api/v1/invoices/{NUMBER}/issue", headers=a)
    assert refused.status_code == 409 and "事業者設定で発行者名・発行者住所を登録してください" in refused.json()["detail"]
    assert (await client.put("/api/v1/billing/settings", headers=a, json=SETTINGS)).status_code == 200
    await runtime.bus.publish(METERING_DAILY_USAGE, [
        day_event(agency, "2024-01-20", 1, values("60.000", "40.000")),
        day_event(agency, "2024-02-10", 1, values("56.700", "35.300")),
    ])

    async def draft_ready():
        r = await client.get(f"/api/v1/invoices/{NUMBER}", headers=a)
        return r.json()["generation_kwh"] == "116.70"

    await until(draft_ready, "daily usage reached billing")
    issued = await client.post(f"/api/v1/invoices/{NUMBER}/issue", headers=a)
    assert issued.status_code == 201, issued.text
    inv = issued.json()
    assert (inv["status"], inv["revision"], inv["total"], inv["sell_fee"], inv["usage_fee"]) == \
        ("issued", 1, "2098", "1205", "1118")
    assert inv["consumption_tax"] == "190" and [r["revision"] for r in inv["revisions"]] == [1]
    again = await client.post(f"/api/v1/invoices/{NUMBER}/issue", headers=a)
    assert again.status_code == 409 and again.json()["detail"] == "この請求は既に発行されています。"

    first_mail = await until(lambda: _mails(handler, 1), "the invoice mail", timeout=60)
    mail = first_mail[0]
    assert mail["To"] == "1120230030@hsppa.info" and "2024/01分 電気料金のご請求" in mail["Subject"]
    assert "ご請求金額（税込）：2,098 円" in mail.get_body(("plain",)).get_content()
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"invoice_{NUMBER}_r1.pdf"
    mailed_pdf = attachment.get_content()
    text = pdf_text(mailed_pdf)
    for expected in ("請求書", "太陽電力株式会社", "登録番号 T1234567890123", "顧客0151 様", NUMBER, "2,098 円",
                     "内消費税 10%", "190 円", "2024/01/16 〜 2024/02/15", "2024/02/10", "56.70", "1,118 円"):
        assert expected in text, expected
    downloaded = await client.get(f"/api/v1/invoices/{NUMBER}.pdf", headers=a)
    assert downloaded.status_code == 200 and downloaded.headers["content-type"] == "application/pdf"
    assert downloaded.content == mailed_pdf

    # a customer edit after issue changes nothing issued; a usage revision makes revision 2
    await client.patch("/api/v1/customers/1120230030", json={"usage_unit_price": "30.00"}, headers=a)
    assert (await client.get(f"/api/v1/invoices/{NUMBER}", headers=a)).json()["usage_fee"] == "1118"
    revised_day = day_event(agency, "2024-02-10", 2, values("66.700", "35.300"), old=values("56.700", "35.300"))
    await runtime.bus.publish(METERING_DAILY_USAGE, [revised_day])

    async def revision_two():
        r = (await client.get(f"/api/v1/invoices/{NUMBER}", headers=a)).json()
        return r if r["revision"] == 2 else None

    inv2 = await until(revision_two, "revision 2")
    assert (inv2["status"], inv2["usage_kwh"], inv2["usage_fee"], inv2["total"]) == ("issued", "51.40", "1388", "2368")
    assert [(r["revision"], r["kind"], r["total"]) for r in inv2["revisions"]] == [(1, "issued", "2098"),
                                                                                   (2, "revised", "2368")]
    mails = await until(lambda: _mails(handler, 2), "the corrected invoice mail")
    assert "【訂正】" in mails[1]["Subject"]
    r1 = await client.get(f"/api/v1/invoices/{NUMBER}.pdf", params={"revision": 1}, headers=a)
    r2 = await client.get(f"/api/v1/invoices/{NUMBER}.pdf", params={"revision": 2}, headers=a)
    assert r1.content == mailed_pdf and "2,368 円" in pdf_text(r2.content) and "第2版" in pdf_text(r2.content)
    await runtime.bus.publish(METERING_DAILY_USAGE, [revised_day])  # redelivered: no revision 3
    detail_csv = await client.get(f"/api/v1/invoices/{NUMBER}.csv", headers=a)
    assert detail_csv.content.decode("utf-8-sig").splitlines()[2] == "2024/02/10,66.70,35.30,31.40,564.80,847.80"

    for other in (f"/api/v1/invoices/{NUMBER}", f"/api/v1/invoices/{NUMBER}.pdf", f"/api/v1/invoices/{NUMBER}.csv"):
        assert (await client.get(other, headers=b)).status_code == 404, other
    assert (await client.post(f"/api/v1/invoices/{NUMBER}/void", headers=b)).status_code == 404
    assert (await client.post(f"/api/v1/invoices/{NUMBER}/issue", headers=b)).status_code == 404

    voided = await client.post(f"/api/v1/invoices/{NUMBER}/void", headers=a, json={"reason": "二重請求"})
    assert voided.status_code == 200 and (voided.json()["status"], voided.json()["revision"]) == ("voided", 2)
    twice = await client.post(f"/api/v1/invoices/{NUMBER}/void", headers=a)
    assert twice.status_code == 409 and twice.json()["detail"] == "この請求は既に取り消されています。"
    current = await client.get(f"/api/v1/invoices/{NUMBER}.pdf", headers=a)
    assert "【取消】" in pdf_text(current.content)
    void_mail = (await until(lambda: _mails(handler, 3), "the void mail"))[2]
    assert void_mail["To"] == "1120230030@hsppa.info" and "【取消】2024/01分" in void_mail["Subject"]
    void_text = void_mail.get_body(("plain",)).get_content()
    assert "取り消し" in void_text and "2,368 円" in void_text and "二重請求" not in void_text  # the reason is internal
    [void_pdf] = list(void_mail.iter_attachments())
    assert void_pdf.get_content() == current.content
    # issued again after the void: the current draft (today's prices: 30.00 a kWh) becomes 第3版 with its own PDF
    # and a 【訂正】 mail; the void ends; a second issue is refused
    reissued = await client.post(f"/api/v1/invoices/{NUMBER}/issue", headers=a)
    assert reissued.status_code == 201, reissued.text
    again3 = reissued.json()
    assert (again3["status"], again3["revision"], again3["usage_fee"]) == ("issued", 3, "1542")
    assert [(r["revision"], r["kind"]) for r in again3["revisions"]] == [(1, "issued"), (2, "revised"), (3, "reissued")]
    r3 = await client.get(f"/api/v1/invoices/{NUMBER}.pdf", headers=a)
    assert "第3版" in pdf_text(r3.content) and "【取消】" not in pdf_text(r3.content)
    assert (await client.get(f"/api/v1/invoices/{NUMBER}.pdf", params={"revision": 3}, headers=a)).content == r3.content
    reissue_mail = (await until(lambda: _mails(handler, 4), "the re-issued invoice mail"))[3]
    assert "【訂正】2024/01分" in reissue_mail["Subject"] and "第3版" in reissue_mail.get_body(("plain",)).get_content()
    assert [p.get_content() for p in reissue_mail.iter_attachments()] == [r3.content]
    twice_issued = await client.post(f"/api/v1/invoices/{NUMBER}/issue", headers=a)
    assert twice_issued.status_code == 409 and twice_issued.json()["detail"] == "この請求は既に発行されています。"
    async def listed_again():
        found = (await client.get("/api/v1/invoices", params={"month": "2024-01"}, headers=a)).json()["items"]
        return [(i["invoice_number"], i["status"], i["revision"]) for i in found] == [(NUMBER, "issued", 3)]

    await until(listed_again, "the month's list shows 第3版 as issued")
    assert (await client.post(f"/api/v1/invoices/{NUMBER}/void", headers=a)).status_code == 200
    listing = (await client.get("/api/v1/invoices", params={"month": "2024-01"}, headers=a)).json()
    assert [(i["invoice_number"], i["status"]) for i in listing["items"]] == [(NUMBER, "voided")]
    await runtime.bus.publish(METERING_DAILY_USAGE, [
        day_event(agency, "2024-02-11", 1, values("5.000", "1.000"))])  # after void: never revised
    await until(lambda: _daily_applied(runtime), "every daily usage event handled")
    assert (await client.get(f"/api/v1/invoices/{NUMBER}", headers=a)).json()["revision"] == 3
    # deleting the customer keeps the issued invoice, in the month's list too
    assert (await client.delete("/api/v1/customers/1120230030", headers=a)).status_code == 204
    kept = await client.get(f"/api/v1/invoices/{NUMBER}", headers=a)
    assert kept.status_code == 200 and (kept.json()["status"], kept.json()["name"]) == ("voided", "顧客0151")
    listing = (await client.get("/api/v1/invoices", params={"month": "2024-01", "name": "0151"}, headers=a)).json()
    assert [i["invoice_number"] for i in listing["items"]] == [NUMBER]
    gone = await client.post(f"/api/v1/invoices/{NUMBER}/issue", headers=a)
    assert gone.status_code == 409 and gone.json()["detail"] == "顧客が削除されているため、この請求は再発行できません。"
    assert (await client.get("/api/v1/invoices/23121120230030", headers=a)).status_code == 404


async def test_a_revision_after_the_closing_day_changed_reads_the_issued_period_across_the_new_months(billing,
                                                                                                     runtime):
    """Days are kept in the month list's lines, filed by the current closing day: an invoice issued under the
    old one still finds every day of its period (now in two calendar months' lines) when one is revised."""
    client, a = billing.client, billing.tokens["a"]
    agency = billing.agency_ids["a"]
    assert (await client.post("/api/v1/customers", json=CUSTOMER, headers=a)).status_code == 201
    assert (await client.put("/api/v1/billing/settings", headers=a, json=SETTINGS)).status_code == 200
    await runtime.bus.publish(METERING_DAILY_USAGE, [
        day_event(agency, "2024-01-20", 1, values("60.000", "40.000")),
        day_event(agency, "2024-02-10", 1, values("56.700", "35.300")),
    ])
    await until(lambda: _daily_applied(runtime), "daily usage reached billing")
    assert (await client.post(f"/api/v1/invoices/{NUMBER}/issue", headers=a)).json()["total"] == "2098"
    assert (await client.put("/api/v1/billing/settings", headers=a,
                             json={**SETTINGS, "closing_day": "末日"})).status_code == 200

    async def refiled():  # 2024/02 is a calendar month now: 2024-02-10 is filed there
        r = await client.get("/api/v1/invoices", params={"month": "2024-02"}, headers=a)
        return r.json()["total"] == 1

    await until(refiled, "the days filed under the new closing day")
    await runtime.bus.publish(METERING_DAILY_USAGE, [
        day_event(agency, "2024-02-10", 2, values("66.700", "35.300"), old=values("56.700", "35.300"))])

    async def revision_two():
        r = (await client.get(f"/api/v1/invoices/{NUMBER}", headers=a)).json()
        return r if r["revision"] == 2 else None

    inv = await until(revision_two, "revision 2")
    assert (inv["period_start"], inv["period_end"]) == ("2024-01-16", "2024-02-15")  # the period issued
    assert [(d["date"], d["generation_kwh"]) for d in inv["daily"]] == [("2024-01-20", "60.00"),
                                                                       ("2024-02-10", "66.70")]
    assert (inv["usage_kwh"], inv["total"]) == ("51.40", "2368")


async def test_drafts_cannot_be_voided_and_running_months_cannot_be_issued(billing):
    client, a = billing.client, billing.tokens["a"]
    assert (await client.post("/api/v1/customers", json=CUSTOMER, headers=a)).status_code == 201
    await client.put("/api/v1/billing/settings", headers=a, json=SETTINGS)
    draft_void = await client.post(f"/api/v1/invoices/{NUMBER}/void", headers=a)
    assert draft_void.status_code == 409 and draft_void.json()["detail"] == "発行されていない請求は取り消せません。"
    today = date.today()
    running = f"{today.year % 100:02d}{today.month:02d}1120230030"
    early = await client.post(f"/api/v1/invoices/{running}/issue", headers=a)
    assert early.status_code == 409 and "翌日から発行できます" in early.json()["detail"]
    assert (await client.get(f"/api/v1/invoices/{NUMBER}.pdf", headers=a)).status_code == 404
    assert (await client.post("/api/v1/invoices/garbage/issue", headers=a)).status_code == 404


async def _mails(handler: Inbox, n: int):
    return handler.messages if len(handler.messages) >= n else None


async def _daily_applied(runtime) -> bool:
    """The month list's consumer has handled every daily usage event published so far (the days stored and any
    revision they caused): it commits a batch only after that. It also reads customer, settings and invoice
    events, so a count of what it applied would not say."""
    return sum(g.lag for g in await runtime.bus.lag("billing.invoice-list", [METERING_DAILY_USAGE])) == 0


async def test_rebuilding_the_month_list_which_keeps_the_days_never_revises_an_issued_invoice(billing, runtime):
    from ppa_runtime.rebuild import rebuild_projection

    client, a = billing.client, billing.tokens["a"]
    agency = billing.agency_ids["a"]
    assert (await client.post("/api/v1/customers", json=CUSTOMER, headers=a)).status_code == 201
    await client.put("/api/v1/billing/settings", headers=a, json=SETTINGS)
    await runtime.bus.publish(METERING_DAILY_USAGE, [
        day_event(agency, "2024-01-20", 1, values("50.000", "40.000")),
        day_event(agency, "2024-01-20", 2, values("60.000", "40.000"), old=values("50.000", "40.000")),
        day_event(agency, "2024-02-10", 1, values("56.700", "35.300")),
    ])
    await until(lambda: _daily_applied(runtime), "daily usage reached billing")
    assert (await client.post(f"/api/v1/invoices/{NUMBER}/issue", headers=a)).json()["total"] == "2098"
    billing_service = billing.host.service("billing")
    # the replay passes through the older version of 2024-01-20 and a period missing 2024-02-10
    replayed = await rebuild_projection(billing_service.invoice_list.spec(), runtime.bus, billing_service.docs)
    assert replayed == 6  # the customer, the settings, the three days and the issue
    inv = (await client.get(f"/api/v1/invoices/{NUMBER}", headers=a)).json()
    assert (inv["revision"], inv["total"], [r["revision"] for r in inv["revisions"]]) == (1, "2098", [1])
