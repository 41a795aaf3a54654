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
