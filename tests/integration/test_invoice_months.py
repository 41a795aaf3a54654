"""Invoice months follow the customer: an invoice for each billing month from the contract start or the first
metered day (whichever is earlier) to the current month, while the customer exists; a month without readings
is the base fee and says 計測データなし; a lone 00:00 reading makes neither a day nor a month."""

from __future__ import annotations

import re
from datetime import date

import httpx
import pytest
from billing_support import customer, day, values
from support import eventually, portal

from ppa_contracts.topics import BILLING_CUSTOMER, METERING_DAILY_USAGE

# the last one in another totals bucket (another shard's when the list runs as two)
NUMBERS = ("1120250030", "1120250031", "1120251001")


class Clock:
    """The JST day the month list takes as today."""

    def __init__(self, today: date) -> None:
        self.today = today

    def __call__(self) -> date:
        return self.today


@pytest.fixture(params=[1, 2], ids=["whole", "two-shards"])
async def site(runtime, request):
    runtime.settings.consumer_shards = f"billing.invoice-list={request.param}"
    async with portal(runtime, ["identity", "billing", "metering"]) as p:
        clock = Clock(date(2024, 3, 20))  # 2024/03 (03-16 .. 04-15) with the default closing day 15
        p.host.service("billing").invoice_list.today = clock
        yield p, clock


async def logged_in(p) -> httpx.AsyncClient:
    client = httpx.AsyncClient(transport=p.client._transport, base_url="http://t")
    token = re.search(r'name="csrf_token" value="([^"]+)"', (await client.get("/agency/login")).text).group(1)
    done = await client.post("/agency/login", data={"email": "a@example.jp", "password": "password123",
                                                    "csrf_token": token})
    assert done.status_code == 303
    return client


def months_of(p, number: str):
    billing = p.host.service("billing")

    async def read() -> list[dict]:
        return await billing.invoices.of_customer(p.agency_ids["a"], number)
    return read


async def register(p, number: str, **fields) -> dict:
    made = await p.client.post("/api/v1/customers", json={**customer(number), **fields}, headers=p.tokens["a"])
    assert made.status_code == 201, made.text
    return made.json()


async def until_months(p, number: str, months: list[str]) -> list[dict]:
    read = months_of(p, number)

    async def settled():
        items = await read()
        return items if [i["month"] for i in items] == months else None

    found = await eventually(settled, timeout=60)
    assert found, f"{number} never had exactly {months}: {[i['month'] for i in await read()]}"
    return found


async def test_months_from_a_mid_period_contract_start_to_now_each_the_base_fee_without_data(site):
    p, _ = site
    # 2024-02-10 is inside 2024/01 (01-16 .. 02-15): the first invoice is 2024/01
    await register(p, NUMBERS[0], contract_start="2024-02-10")
    items = await until_months(p, NUMBERS[0], ["2024/03", "2024/02", "2024/01"])
    for item in items:
        assert (item["total"], item["usage_kwh"], item["metered_days"], item["status"]) == ("980", "0.00", 0, "draft")
    listing = await p.host.service("billing").portal.invoice_list(p.agency_ids["a"], "2024/02")
    assert [i["customer_number"] for i in listing["items"]] == [NUMBERS[0]]
    assert listing["totals"]["total"] == "980"
    assert (await p.host.service("billing").portal.invoice_list(p.agency_ids["a"], "2023/12"))["total"] == 0
    # the invoice's detail and the agency's list page say so
    detail = (await p.client.get(f"/api/v1/invoices/2402{NUMBERS[0]}", headers=p.tokens["a"])).json()
    assert (detail["daily"], detail["metered_days"], detail["total"]) == ([], 0, "980")
    page = await logged_in(p)
    try:
        listed = (await page.get("/agency/invoices", params={"month": "2024/02"})).text
        assert '<td class="no-data" colspan="3">計測データなし</td>' in listed and "全 1 件" in listed
        own = (await page.get(f"/agency/customers/{NUMBERS[0]}/invoices")).text
        assert own.count("計測データなし") == 3
        shown = (await page.get(f"/agency/invoices/2402{NUMBERS[0]}")).text
        assert 'id="no-data">計測データなし' in shown and "980 円" in shown
    finally:
        await page.aclose()


async def test_readings_before_the_contract_open_the_months_from_the_first_metered_day(site, runtime):
    p, _ = site
    agency = p.agency_ids["a"]
    await register(p, NUMBERS[1], contract_start="2024-03-01")  # 2024/02
    await until_months(p, NUMBERS[1], ["2024/03", "2024/02"])
    await runtime.bus.publish(METERING_DAILY_USAGE, [day(agency, NUMBERS[1], "2023-12-20", 1,
                                                         values("10.000", "4.000"))])  # 2023/12, before the contract
    items = await until_months(p, NUMBERS[1], ["2024/03", "2024/02", "2024/01", "2023/12"])
    december = items[-1]
    # the day outside the contract: its kWh are shown, its usage is not charged
    assert (december["generation_kwh"], december["usage_kwh"], december["usage_fee"], december["total"],
            december["metered_days"]) == ("10.00", "6.00", "0", "980", 1)
    assert [i["metered_days"] for i in items[:-1]] == [0, 0, 0]


async def test_a_new_month_opens_for_a_silent_customer_and_redelivery_adds_nothing(site, runtime):
    p, clock = site
    agency = p.agency_ids["a"]
    billing = p.host.service("billing")
    for number in NUMBERS:
        await register(p, number, contract_start="2024-03-18")
    for number in NUMBERS:
        await until_months(p, number, ["2024/03"])
    clock.today = date(2024, 4, 16)  # 2024/04 begins; nobody sent anything
    for number in NUMBERS:
        await until_months(p, number, ["2024/04", "2024/03"])
    april = await billing.portal.invoice_list(agency, "2024/04")
    assert (april["total"], april["totals"]["count"], april["totals"]["total"]) == (3, "3", "2940")

    # every customer event delivered again, and the month opening run again: the same lines, once each
    events = [env for number in NUMBERS for env in await billing.events.read(f"customer:{agency}:{number}")]
    await runtime.bus.publish(BILLING_CUSTOMER, events)
    marker = await register(p, "1120250032", contract_start="2024-04-20")  # behind the redelivered events
    await until_months(p, marker["customer_number"], ["2024/04"])
    billing.invoice_list._opened.clear()
    await billing.invoice_list.months_of.delete({"_id": {"$gte": "~opened", "$lt": "~openee"}})
    clock.today = date(2024, 4, 17)
    for number in NUMBERS:
        await until_months(p, number, ["2024/04", "2024/03"])
    april = await billing.portal.invoice_list(agency, "2024/04")
    assert (april["total"], april["totals"]["count"], april["totals"]["total"]) == (4, "4", "3920")
    march = await billing.portal.invoice_list(agency, "2024/03")
    assert (march["total"], march["totals"]["count"]) == (3, "3")


async def test_a_customer_deleted_mid_month_gets_no_new_month(site, runtime):
    p, clock = site
    billing = p.host.service("billing")
    agency = p.agency_ids["a"]
    await register(p, NUMBERS[0], contract_start="2024-02-20")
    await register(p, NUMBERS[2], contract_start="2024-02-20")
    await until_months(p, NUMBERS[0], ["2024/03", "2024/02"])
    await until_months(p, NUMBERS[2], ["2024/03", "2024/02"])
    clock.today = date(2024, 3, 25)  # mid-month
    assert (await p.client.delete(f"/api/v1/customers/{NUMBERS[2]}", headers=p.tokens["a"])).status_code == 204
    clock.today = date(2024, 4, 20)
    await until_months(p, NUMBERS[0], ["2024/04", "2024/03", "2024/02"])

    async def april_listed():
        listing = await billing.portal.invoice_list(agency, "2024/04")
        return listing if listing["total"] == 1 else None

    april = await eventually(april_listed, timeout=60)
    assert april and [i["customer_number"] for i in april["items"]] == [NUMBERS[0]]
    # no line at all for the deleted customer's month after its deletion
    assert await billing.invoice_list.lines.get(f"{agency}:2024/04:{NUMBERS[2]}") is None


async def test_a_lone_midnight_reading_makes_no_day_and_no_invoice_of_a_new_month(site):
    p, clock = site
    clock.today = date(2024, 4, 15)  # the last day of 2024/03
    made = await register(p, NUMBERS[1], contract_start="2024-04-01")
    device = {"Authorization": f"Bearer {made['auth_code']}"}
    metering = p.host.service("metering")

    async def registered():
        return await metering.devices.authenticate(f"S{NUMBERS[1]}", made["auth_code"]) or None

    assert await eventually(registered, timeout=60), "the registry never saw the device"
    # the register at 2024-04-16 00:00 closes 04-15; it is the only reading of 04-16 (the first day of 2024/04)
    readings = [{"at": at, "channel": "pv_generation", "kwh": kwh} for at, kwh in (
        ("2024-04-15T12:00:00+09:00", "100.00"), ("2024-04-16T00:00:00+09:00", "103.00"))]
    pushed = await p.client.post(f"/api/v1/devices/S{NUMBERS[1]}/readings", json={"readings": readings},
                                 headers=device)
    assert pushed.status_code == 202, pushed.text
    items = await until_months(p, NUMBERS[1], ["2024/03"])

    async def metered():
        now = (await months_of(p, NUMBERS[1])())[0]
        return now if now["metered_days"] == 1 else None

    march = await eventually(metered, timeout=60)
    assert march and march["generation_kwh"] == "3.00"
    days = await metering.daily.days(p.agency_ids["a"], NUMBERS[1], date(2024, 4, 1), date(2024, 4, 30))
    assert [d["date"] for d in days] == ["2024-04-15"]
    assert [i["month"] for i in items] == ["2024/03"]
    assert await p.host.service("billing").invoice_list.lines.get(
        f"{p.agency_ids['a']}:2024/04:{NUMBERS[1]}") is None
