"""Draft invoices from metering's daily usage: the seed's arithmetic, CSVs byte-exact, agency-scoped."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import pytest
from support import portal

from ppa_contracts import Envelope
from ppa_contracts.metering import DailyUsageComputed, DailyUsageRevised, DailyValues
from ppa_contracts.topics import METERING_DAILY_USAGE

CUSTOMER = {"customer_number": "1120230030", "serial_number": "E2300030", "name": "山田 太郎",
            "base_fee": "980", "sell_unit_price": "16.00", "usage_unit_price": "27.00",
            "contract_start": "2023-06-01"}
LIST_HEADER = "利用月,請求番号,顧客番号,氏名,基本料金(円),発電量(kWh),売電量(kWh),利用量(kWh),売電料金(円),利用料金(円),利用料金合計(円)"
DETAIL_HEADER = "利用日,発電量(kWh),売電量(kWh),利用量(kWh),売電料金(円),利用料金(円)"


def values(gen: str, sold: str) -> DailyValues:
    g, s = Decimal(gen), Decimal(sold)
    z = Decimal("0.000")
    return DailyValues(generation_kwh=g, sold_kwh=s, usage_kwh=g - s, import_kwh=z, battery_charge_kwh=z,
                       battery_discharge_kwh=z, estimated=False, reset=False, usage_clamped=False)


@pytest.fixture
async def api(runtime):
    async with portal(runtime, ["identity", "billing"]) as p:
        assert (await p.client.post("/api/v1/customers", json=CUSTOMER, headers=p.tokens["a"])).status_code == 201
        yield p.client, p.tokens, p.agency_ids["a"]


def day_event(agency_id: str, day: str, version: int, new: DailyValues, old: DailyValues | None = None) -> Envelope:
    base = {"agency_id": agency_id, "customer_number": "1120230030", "serial_number": "E2300030",
            "date": date.fromisoformat(day)}
    payload = DailyUsageRevised(**base, old=old, new=new) if old else DailyUsageComputed(**base, values=new)
    return Envelope.wrap(payload, subject="1120230030", correlation_id="t", aggregate_version=version)


async def test_draft_invoice_matches_the_seed_row_and_follows_revisions(api, runtime):
    client, tokens, agency_id = api
    a = tokens["a"]
    first = day_event(agency_id, "2024-01-20", 1, values("50.000", "40.000"))
    await runtime.bus.publish(METERING_DAILY_USAGE, [
        first,
        day_event(agency_id, "2024-02-10", 1, values("56.700", "35.300")),
        day_event(agency_id, "2024-02-16", 1, values("99.000", "1.000")),   # next billing month
        day_event(agency_id, "2024-01-20", 2, values("60.000", "40.000"), old=values("50.000", "40.000")),
        first,                                                               # redelivered, older: ignored
    ])

    async def settled():
        r = await client.get("/api/v1/invoices/24011120230030", headers=a)
        listed = (await client.get("/api/v1/invoices", params={"month": "2024-01"}, headers=a)).json()["items"]
        # the month list is a projection of its own: it catches up with the same events
        ready = r.status_code == 200 and r.json()["generation_kwh"] == "116.70" and \
            [i["generation_kwh"] for i in listed] == ["116.70"]
        return r.json() if ready else None

    for _ in range(300):
        inv = await settled()
        if inv:
            break
        await asyncio.sleep(0.1)
    assert inv, "daily usage never reached billing"
    assert {k: inv[k] for k in ("month", "sold_kwh", "usage_kwh", "sell_fee", "usage_fee", "total", "base_fee",
                                "period_start", "period_end", "status")} == {
        "month": "2024/01", "sold_kwh": "75.30", "usage_kwh": "41.40", "sell_fee": "1205", "usage_fee": "1118",
        "total": "2098", "base_fee": "980", "period_start": "2024-01-16", "period_end": "2024-02-15",
        "status": "draft"}
    assert [d["date"] for d in inv["daily"]] == ["2024-01-20", "2024-02-10"]

    listing = await client.get("/api/v1/invoices", params={"month": "2024-01"}, headers=a)
    assert listing.json()["total"] == 1 and listing.json()["items"][0]["total"] == "2098"

    csv_list = await client.get("/api/v1/invoices.csv", params={"month": "2024-01"}, headers=a)
    assert csv_list.content.startswith(b"\xef\xbb\xbf" + LIST_HEADER.encode() + b"\r\n")
    assert csv_list.content.decode("utf-8-sig").splitlines()[1] == \
        "2024/01,24011120230030,1120230030,山田 太郎,980,116.70,75.30,41.40,1205,1118,2098"
    detail = await client.get("/api/v1/invoices/24011120230030.csv", headers=a)
    lines = detail.content.decode("utf-8-sig").splitlines()
    assert lines[0] == DETAIL_HEADER and lines[1] == "2024/01/20,60.00,40.00,20.00,640.00,540.00"
    sjis = await client.get("/api/v1/invoices.csv", params={"month": "2024-01", "encoding": "shift_jis"}, headers=a)
    assert sjis.content.decode("cp932").startswith(LIST_HEADER)


async def test_invoice_input_errors_and_other_agencies(api):
    client, tokens, _ = api
    bad = await client.get("/api/v1/invoices", params={"month": "2024-13"}, headers=tokens["a"])
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert (await client.get("/api/v1/invoices/garbage", headers=tokens["a"])).status_code == 404
    assert (await client.get("/api/v1/invoices/24011120230030", headers=tokens["b"])).status_code == 404
    assert (await client.get("/api/v1/invoices/24011120230030.csv", headers=tokens["b"])).status_code == 404
    assert (await client.get("/api/v1/invoices", params={"month": "2024-01"}, headers=tokens["b"])).json() == \
        {"items": [], "total": 0}


async def test_the_csvs_of_more_rows_than_are_read_at_a_time_hold_each_row_once_in_order(api, runtime, monkeypatch):
    import ppa_billing.customers
    import ppa_billing.invoices

    monkeypatch.setattr(ppa_billing.invoices, "CHUNK", 2)  # the files are read 2 rows at a time
    monkeypatch.setattr(ppa_billing.customers, "CHUNK", 2)
    client, tokens, agency_id = api
    a = tokens["a"]
    numbers = ["1120230030"] + [f"11202300{i}" for i in range(41, 45)]
    for n in numbers[1:]:
        body = {**CUSTOMER, "customer_number": n, "serial_number": f"E{n[2:]}", "name": f"川田 {n[-1]}郎"}
        assert (await client.post("/api/v1/customers", json=body, headers=a)).status_code == 201
    await runtime.bus.publish(METERING_DAILY_USAGE, [Envelope.wrap(DailyUsageComputed(
        agency_id=agency_id, customer_number=n, serial_number="E2300030" if n == numbers[0] else f"E{n[2:]}",
        date=date(2024, 1, 20), values=values(f"{10 + i}.000", "4.000")), subject=n, correlation_id="t",
        aggregate_version=1) for i, n in enumerate(numbers)])

    async def listed() -> list[dict]:
        return (await client.get("/api/v1/invoices", params={"month": "2024-01"}, headers=a)).json()["items"]

    for _ in range(300):  # lines exist from registration: wait for each one's day too
        if len(now := await listed()) == 5 and all(i["metered_days"] for i in now):
            break
        await asyncio.sleep(0.1)
    items = await listed()
    assert [i["customer_number"] for i in items] == numbers

    def rows(content: bytes, encoding: str = "utf-8") -> list[str]:
        return content.decode(encoding).split("\r\n")

    whole = (await client.get("/api/v1/invoices.csv", params={"month": "2024-01"}, headers=a)).content
    assert whole.count(b"\xef\xbb\xbf") == 1 and rows(whole, "utf-8-sig")[0] == LIST_HEADER
    assert rows(whole, "utf-8-sig")[1:] == [
        f"2024/01,{i['invoice_number']},{i['customer_number']},{i['name']},980,{i['generation_kwh']},"
        f"{i['sold_kwh']},{i['usage_kwh']},{i['sell_fee']},{i['usage_fee']},{i['total']}" for i in items] + [""]
    sjis = await client.get("/api/v1/invoices.csv", params={"month": "2024-01", "encoding": "shift_jis"}, headers=a)
    assert rows(sjis.content, "cp932") == rows(whole, "utf-8-sig")
    found = await client.get("/api/v1/invoices.csv", params={"month": "2024-01", "name": "川田"}, headers=a)
    assert [r.split(",")[2] for r in rows(found.content, "utf-8-sig")[1:-1]] == numbers[1:]

    customers = (await client.get("/api/v1/customers.csv", headers=a)).content
    assert customers.count(b"\xef\xbb\xbf") == 1
    assert [r.split(",")[0] for r in rows(customers, "utf-8-sig")[1:-1]] == numbers
    by_name = (await client.get("/api/v1/customers.csv", params={"q": "郎"}, headers=a)).content
    assert [r.split(",")[0] for r in rows(by_name, "utf-8-sig")[1:-1]] == numbers
    assert (await client.get("/api/v1/customers.csv", params={"encoding": "latin-1"}, headers=a)).status_code == 422
