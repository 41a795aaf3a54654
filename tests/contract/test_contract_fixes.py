"""What schemathesis found the server doing against its own document, now answered as documented (both runtimes)."""

from __future__ import annotations

from ops_helpers import wait_until
from support import portal

CUSTOMER = {"customer_number": "1120240001", "serial_number": "SN-FIX-1", "name": "契約 花子", "base_fee": "980",
            "sell_unit_price": "16.00", "usage_unit_price": "27.00"}
PROBLEM = "application/problem+json"


async def test_daily_usage_takes_iso_dates_only(runtime):
    async with portal(runtime, ["identity", "billing", "metering"], agencies=("a",)) as p:
        a = p.tokens["a"]
        assert (await p.client.post("/api/v1/customers", json=CUSTOMER, headers=a)).status_code == 201
        path = "/api/v1/customers/1120240001/daily-usage"
        for bad in ({"to": "0"}, {"from": "1700000000"}, {"to": "2024-02-30"}, {"from": "2024-1-5"}):
            r = await p.client.get(path, params=bad, headers=a)  # `0` was read as 1970-01-01, a Unix time
            assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (bad, r.text)
            assert r.json()["errors"][0]["field"] == next(iter(bad)), bad

        async def answered() -> bool:  # once metering has read the new customer from billing's event
            ok = await p.client.get(path, params={"from": "2024-01-01", "to": "2024-01-31"}, headers=a)
            return ok.status_code == 200 and ok.json() == []

        await wait_until(answered, what="the customer's daily usage")


async def test_a_whole_number_written_with_a_fraction_is_that_integer_and_booleans_stay_refused(runtime):
    async with portal(runtime, ["identity", "billing"], agencies=("a",)) as p:
        a = p.tokens["a"]
        saved = await p.client.put("/api/v1/billing/settings", json={"closing_day": 20.0}, headers=a)
        assert saved.status_code == 200 and saved.json()["closing_day"] == 20
        for bad in (20.5, True):
            r = await p.client.put("/api/v1/billing/settings", json={"closing_day": bad}, headers=a)
            assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, bad
        assert (await p.client.get("/api/v1/billing/settings", headers=a)).json()["closing_day"] == 20
        created = await p.client.post("/api/v1/customers", json={**CUSTOMER, "base_fee": 980.0}, headers=a)
        assert created.status_code == 201 and created.json()["base_fee"] == "980"


async def test_search_terms_are_bounded(runtime):
    async with portal(runtime, ["identity", "billing"], agencies=("a",)) as p:
        a = p.tokens["a"]
        for path, params in (("/api/v1/customers", {}), ("/api/v1/invoices", {"month": "2024-01"})):
            r = await p.client.get(path, params={**params, "q": "あ" * 101}, headers=a)
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "q", path
            assert (await p.client.get(path, params={**params, "q": "あ" * 100}, headers=a)).status_code == 200
