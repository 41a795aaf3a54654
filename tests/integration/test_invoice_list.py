"""The month's invoice list projection: lines agree with each invoice's detail, and the totals row equals the sum
of the rows after usage revisions, a price change, a closing-day change, issue and void; other agencies see none."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from decimal import Decimal

import pytest
from billing_support import customer, day, values
from ops_helpers import publish_broken
from support import portal

from ppa_contracts import dlq
from ppa_contracts.topics import METERING_DAILY_USAGE

FIELDS = ("base_fee", "generation_kwh", "sold_kwh", "usage_kwh", "sell_fee", "usage_fee", "total")
# the last one in another totals bucket, which is another shard's when the list runs as two (an odd 7th digit)
NUMBERS = ("1120230030", "1120230031", "1120241001")
CONTRACT = "2024-01-16"  # the first day of 2024/01 with closing day 15
SETTINGS = {"closing_day": 15, "rounding": "half_up", "issuer_name": "太陽電力株式会社",
            "issuer_address": "東京都中央区", "registration_number": None}


async def until(check, what: str, timeout: float = 60):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def summed(items: list[dict]) -> dict[str, str]:
    return {k: str(sum((Decimal(i[k]) for i in items), Decimal(0))) for k in FIELDS} | {"count": str(len(items))}


@pytest.fixture(params=[1, 2], ids=["whole", "two-shards"])
async def billing(runtime, request):
    """Billing with its month list run as one group, or as two shards (each its own consumer and positions)."""
    runtime.settings.consumer_shards = f"billing.invoice-list={request.param}"
    async with portal(runtime, ["identity", "billing", "notify"]) as p:
        # today is in 2024/01 and the contracts start then: every customer has that month's invoice, and the
        # months before only where a day was metered (test_invoice_months holds the rule itself)
        p.host.service("billing").invoice_list.today = lambda: date(2024, 1, 20)
        groups = sorted(c.group for c in p.host.consumers if c.spec.group == "billing.invoice-list")
        assert groups == (["billing.invoice-list"] if request.param == 1 else
                          ["billing.invoice-list.shard0of2", "billing.invoice-list.shard1of2"])
        for number in NUMBERS:
            assert (await p.client.post("/api/v1/customers", json={**customer(number), "contract_start": CONTRACT},
                                        headers=p.tokens["a"])).status_code == 201
        yield p


async def test_totals_row_is_the_sum_of_the_rows_through_revisions_settings_issue_and_void(billing, runtime):
    client, a = billing.client, billing.tokens["a"]
    agency = billing.agency_ids["a"]
    pages = billing.host.service("billing").portal

    async def settled(month: str, expected: int):
        """The list's lines equal each invoice's detail (computed from the stored days), and the totals row."""
        listing = await pages.invoice_list(agency, month)
        items = listing["items"]
        if len(items) != expected:
            return None
        for item in items:
            detail = (await client.get(f"/api/v1/invoices/{item['invoice_number']}", headers=a)).json()
            if any(item[k] != detail[k] for k in (*FIELDS, "status", "period_start", "name")):
                return None
        live = [i for i in items if i["status"] != "voided"]
        return listing if listing["totals"] == summed(live) else None

    await runtime.bus.publish(METERING_DAILY_USAGE, [
        day(agency, NUMBERS[0], "2024-01-20", 1, values("50.000", "40.000")),
        day(agency, NUMBERS[0], "2024-02-10", 1, values("56.700", "35.300")),
        day(agency, NUMBERS[1], "2024-01-31", 1, values("12.346", "2.004")),
        day(agency, NUMBERS[2], "2024-01-10", 1, values("8.000", "1.000")),  # 2023/12 with closing day 15
        day(agency, NUMBERS[2], "2024-02-01", 1, values("20.000", "5.000")),
        day(agency, NUMBERS[0], "2024-01-20", 2, values("60.000", "40.000"), old=values("50.000", "40.000")),
        day(agency, NUMBERS[0], "2024-01-20", 1, values("50.000", "40.000")),  # redelivered older version
    ])
    async def revised():  # every line is listed before its days come (the base fee): wait for the days
        listing = await settled("2024/01", 3)
        return listing if listing and listing["items"][0]["generation_kwh"] == "116.70" else None

    first = await until(revised, "the list caught up with the revision")
    assert first["totals"]["generation_kwh"] == str(Decimal("116.70") + Decimal("12.35") + Decimal("20.00"))
    assert first["items"][0]["total"] == "2098"  # the seed row, after the revision
    assert (await pages.invoice_list(agency, "2023/12"))["total"] == 1

    # a price change recomputes that customer's lines
    await client.patch(f"/api/v1/customers/{NUMBERS[1]}", json={"usage_unit_price": "30.00"}, headers=a)
    changed = await until(lambda: settled("2024/01", 3), "the new price in the list")
    assert changed["totals"] != first["totals"]

    # a closing-day change files every day again: 2024/01 is now the calendar month
    assert (await client.put("/api/v1/billing/settings", headers=a,
                             json={**SETTINGS, "closing_day": "末日"})).status_code == 200
    refiled = await until(lambda: settled("2024/01", 3), "the days filed under the new closing day")
    assert {i["period_start"] for i in refiled["items"]} == {"2024-01-01"}
    assert refiled["totals"]["generation_kwh"] == str(Decimal("60.00") + Decimal("12.35") + Decimal("8.00"))
    assert (await pages.invoice_list(agency, "2023/12"))["total"] == 0

    # issued figures replace the draft; a voided invoice stays listed but leaves the totals
    number = f"2401{NUMBERS[0]}"
    assert (await client.post(f"/api/v1/invoices/{number}/issue", headers=a)).status_code == 201
    await until(lambda: settled("2024/01", 3), "the issued invoice in the totals")
    assert (await client.post(f"/api/v1/invoices/{number}/void", headers=a)).status_code == 200

    async def voided():
        listing = await settled("2024/01", 3)
        return listing if listing and listing["totals"]["count"] == "2" else None

    after_void = await until(voided, "the voided invoice out of the totals")
    assert [i["status"] for i in after_void["items"]] == ["voided", "draft", "draft"]
    assert after_void["total"] == 3  # the count of listed invoices, kept with the totals, still has it
    api = (await client.get("/api/v1/invoices", params={"month": "2024-01"}, headers=a)).json()
    assert (api["total"], len(api["items"])) == (3, 3)
    assert (await client.get("/api/v1/invoices", params={"month": "2024-01", "q": NUMBERS[2][-4:]},
                             headers=a)).json()["total"] == 1

    # a search narrows the rows and its totals alike
    searched = await pages.invoice_list(agency, "2024/01", customer_number=NUMBERS[2][-4:])
    assert [i["customer_number"] for i in searched["items"]] == [NUMBERS[2]]
    assert searched["totals"] == summed(searched["items"])
    everyone = await pages.invoice_list(agency, "2024/01", name="顧客")  # the voided one is found, not summed
    assert [i["customer_number"] for i in everyone["items"]] == list(NUMBERS)
    assert everyone["totals"] == summed([i for i in everyone["items"] if i["status"] != "voided"])
    assert everyone["totals"] == after_void["totals"]
    one = await pages.invoice_list(agency, "2024/01", name="0031")  # one line of a bucket: its entry, not its sums
    assert [i["customer_number"] for i in one["items"]] == [NUMBERS[1]] and one["totals"] == summed(one["items"])
    voided_one = await pages.invoice_list(agency, "2024/01", name="0030")
    assert voided_one["total"] == 1 and voided_one["totals"]["count"] == "0"

    # another agency sees nothing of it
    other = await pages.invoice_list(billing.agency_ids["b"], "2024/01")
    assert (other["total"], other["totals"]["count"]) == (0, "0")
    assert (await client.get("/api/v1/invoices", params={"month": "2024-01"}, headers=billing.tokens["b"])).json() \
        == {"items": [], "total": 0}


async def test_a_deleted_customers_draft_leaves_the_list_and_the_others_stay(billing, runtime):
    client, a = billing.client, billing.tokens["a"]
    agency = billing.agency_ids["a"]
    pages = billing.host.service("billing").portal
    await runtime.bus.publish(METERING_DAILY_USAGE, [
        day(agency, NUMBERS[0], "2024-01-20", 1, values("5.000", "1.000")),
        day(agency, NUMBERS[1], "2024-01-20", 1, values("6.000", "1.000")),
    ])

    async def listed(n: int):
        listing = await pages.invoice_list(agency, "2024/01")
        return listing if listing["total"] == n and listing["totals"]["count"] == str(n) else None

    await until(lambda: listed(3), "the drafts listed (one without days: its base fee)")
    assert (await client.delete(f"/api/v1/customers/{NUMBERS[1]}", headers=a)).status_code == 204
    left = await until(lambda: listed(2), "the deleted customer's draft gone from list and totals")
    assert [i["customer_number"] for i in left["items"]] == [NUMBERS[0], NUMBERS[2]]
    assert left["totals"] == summed(left["items"])


async def test_a_days_kwh_are_rounded_half_up_to_two_decimals_in_the_list_and_the_detail(billing, runtime):
    """Metering's kWh have three decimals; billing works on the two people see, rounded 四捨五入 like the sums."""
    client, a = billing.client, billing.tokens["a"]
    agency = billing.agency_ids["a"]
    pages = billing.host.service("billing").portal
    await runtime.bus.publish(METERING_DAILY_USAGE, [
        day(agency, NUMBERS[0], "2024-01-20", 1, values("10.005", "4.005")),
        day(agency, NUMBERS[0], "2024-01-21", 1, values("2.125", "0.000")),
    ])

    async def both_days():
        detail = (await client.get(f"/api/v1/invoices/2401{NUMBERS[0]}", headers=a)).json()
        return detail if len(detail.get("daily", ())) == 2 else None

    detail = await until(both_days, "both days in the invoice")
    item = (await pages.invoice_list(agency, "2024/01"))["items"][0]
    assert (item["generation_kwh"], item["sold_kwh"], item["usage_kwh"]) == ("12.14", "4.01", "8.13")
    assert [(d["date"], d["generation_kwh"], d["sold_kwh"], d["usage_kwh"]) for d in detail["daily"]] == [
        ("2024-01-20", "10.01", "4.01", "6.00"), ("2024-01-21", "2.13", "0.00", "2.13")]
    assert (detail["generation_kwh"], detail["total"]) == ("12.14", item["total"])


async def test_a_malformed_day_among_good_ones_is_dead_lettered_and_the_good_ones_are_applied(billing, runtime):
    """The list reads only a few values of each daily-usage record; one that is not what its model says makes the
    batch go one record at a time, where the model refuses it: it is dead-lettered, the days around it apply."""
    client, a = billing.client, billing.tokens["a"]
    agency = billing.agency_ids["a"]
    good = [day(agency, NUMBERS[0], when, 1, values(gen, "1.000")) for when, gen in (("2024-01-20", "5.000"),
                                                                                    ("2024-01-21", "2.000"))]
    await runtime.bus.publish(METERING_DAILY_USAGE, good[:1])
    _, headers, value = day(agency, NUMBERS[0], "2024-01-22", 1, values("3.000", "1.000")).to_kafka()
    await publish_broken(runtime, METERING_DAILY_USAGE, NUMBERS[0], value.replace(b"2024-01-22", b"2024-02-30"),
                         headers)
    await runtime.bus.publish(METERING_DAILY_USAGE, good[1:])

    async def both_good_days():
        detail = (await client.get(f"/api/v1/invoices/2401{NUMBERS[0]}", headers=a)).json()
        return detail if len(detail.get("daily", ())) == 2 else None

    detail = await until(both_good_days, "the good days around the broken one applied")
    assert [d["date"] for d in detail["daily"]] == ["2024-01-20", "2024-01-21"]
    assert detail["generation_kwh"] == "7.00"
    sub = await runtime.bus.subscribe(f"test-dead-{uuid.uuid4().hex[:6]}", [dlq(METERING_DAILY_USAGE)])
    try:
        dead: list = []
        deadline = asyncio.get_running_loop().time() + 60
        while not dead and asyncio.get_running_loop().time() < deadline:
            dead += await sub.fetch(timeout=0.5)
    finally:
        await sub.close()
    assert len(dead) == 1 and b"2024-02-30" in repr(dead[0].as_json()).encode()


async def test_the_count_of_a_months_invoices_on_every_page_and_from_older_totals(billing, runtime):
    from ppa_billing.domain.billing_month import BillingMonth

    agency = billing.agency_ids["a"]
    service = billing.host.service("billing")
    await runtime.bus.publish(METERING_DAILY_USAGE, [
        day(agency, number, "2024-01-20", 1, values("5.000", "1.000")) for number in NUMBERS])

    async def listed():
        listing = await service.portal.invoice_list(agency, "2024/01")
        return listing if listing["totals"]["count"] == "3" and listing["totals"]["generation_kwh"] == "15.00" \
            else None

    assert (await until(listed, "three drafts with their days in the totals"))["total"] == 3
    month = BillingMonth.parse("2024/01")

    async def counts() -> list[tuple[int, int]]:
        """(rows, total) of pages 1-3 with two a page: a full page, the last one, one past the end."""
        return [(len(items), total) for items, total in
                [await service.invoices.month(agency, month, page=p, per_page=2) for p in (1, 2, 3)]]

    assert await counts() == [(2, 3), (1, 3), (0, 3)]
    sums = service.invoice_list.sums
    old = [{k: v for k, v in d.items() if k != "listed"} for d in await sums.find({"agency_id": agency})]
    await sums.replace_many(old)  # as written before the buckets kept the count: counted instead
    assert await counts() == [(2, 3), (1, 3), (0, 3)]


async def test_a_text_search_reads_the_search_buckets_which_follow_every_change(billing, runtime):
    client, a = billing.client, billing.tokens["a"]
    agency = billing.agency_ids["a"]
    service = billing.host.service("billing")
    await runtime.bus.publish(METERING_DAILY_USAGE, [
        day(agency, number, "2024-01-20", 1, values("5.000", "1.000")) for number in NUMBERS])

    async def names(text: str) -> list[str] | None:
        found = (await client.get("/api/v1/invoices", params={"month": "2024-01", "name": text}, headers=a)).json()
        return [i["customer_number"] for i in found["items"]]

    async def found(text: str, expected: list[str]):
        return await names(text) == expected or None

    await until(lambda: found("顧客", list(NUMBERS)), "the search entries of every line")
    assert await names("顧客0031") == [NUMBERS[1]]
    texts = {d["_id"]: d["text"] for d in await service.invoice_list.search.find({"agency_id": agency})}
    assert texts == {f"{agency}:2024/01:1120230": "1120230030\t顧客0030\t\n1120230031\t顧客0031\t",
                     f"{agency}:2024/01:1120241": "1120241001\t顧客1001\t"}

    await client.patch(f"/api/v1/customers/{NUMBERS[1]}", json={"name": "改名 Hanako\t", "name_kana": "カイメイ"},
                       headers=a)
    await until(lambda: found("改名", [NUMBERS[1]]), "the renamed customer found by the new name")
    assert await names("顧客0031") == []
    assert await names("hanako") == await names("カイメイ") == [NUMBERS[1]]  # either name, any case
    assert (await client.get("/api/v1/invoices", params={"month": "2024-01", "q": "1001"}, headers=a)).json()[
        "total"] == 1
    assert (await client.get("/api/v1/invoices", params={"month": "2024-01", "name": "顧客", "customer_number": "2024"},
                             headers=a)).json()["total"] == 1  # every given field narrows
    await client.delete(f"/api/v1/customers/{NUMBERS[2]}", headers=a)
    await until(lambda: found("顧客", [NUMBERS[0]]), "the deleted customer's draft out of the search")

    # a totals bucket without search entries (written before they existed) is searched on the lines themselves,
    # until a change in the bucket writes them again from its lines
    bucket = f"{agency}:2024/01:1120230"
    await service.invoice_list.search.delete({"_id": bucket})
    assert await names("HANAKO") == [NUMBERS[1]]
    assert await names("顧客") == [NUMBERS[0]]
    await client.patch(f"/api/v1/customers/{NUMBERS[1]}", json={"name": "再改名"}, headers=a)
    rebuilt = await until(lambda: service.invoice_list.search.get(bucket), "the bucket's search entries again")
    assert rebuilt["text"] == "1120230030\t顧客0030\t\n1120230031\t再改名\tカイメイ"
    assert await names("顧客") == [NUMBERS[0]] and await names("改名") == [NUMBERS[1]]
