"""Billing's month list run as two shards in workers of their own, as `ppa worker billing --shard I` runs them: each
worker runs its shard (shard 0's also the rest of billing), each shard applies its own customers' days, commits
the other shard's records with its own, and /ops/health shows each shard's lag. Both runtimes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from billing_support import customer, day, values
from ops_helpers import sign_in_operator, wait_until

from ppa.platform import build_host
from ppa_contracts.identity import AgencyProfile
from ppa_contracts.topics import METERING_DAILY_USAGE
from ppa_gateway.app import create_app

GROUP = "billing.invoice-list"
EVEN, ODD = "1120230030", "1120241001"  # the 7th digit: shard 0 and shard 1 of two


def lag_of(html: str, group: str) -> int:
    row = re.search(rf'<tr class="[^"]*" data-group="{re.escape(group)}">.*?</tr>', html, re.S).group(0)
    return int(re.search(r'<td class="num lag">(\d+)</td>', row).group(1))


@pytest.fixture
async def deployed(runtime) -> AsyncIterator[tuple[httpx.AsyncClient, object, dict[str, str], str]]:
    """The gateway without workers (pages and APIs), identity's worker, and billing's shard 0 worker."""
    runtime.settings.consumer_shards = f"{GROUP}=2"
    api = build_host(runtime, ["identity", "billing"], workers=False)
    app = create_app(api)
    workers = [build_host(runtime, ["identity"]), build_host(runtime, ["billing"], shard=0)]
    for host in (api, *workers):
        await host.start()
    try:
        agency = await api.service("identity").create_agency("a@example.jp", "password123",
                                                             AgencyProfile(company="a電力"))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            token = (await client.post("/api/v1/auth/token",
                                       data={"username": "a@example.jp", "password": "password123"})).json()
            auth = {"Authorization": f"Bearer {token['access_token']}"}
            for number in (EVEN, ODD):
                assert (await client.post("/api/v1/customers", json=customer(number), headers=auth)).status_code == 201
            await sign_in_operator(client, api.service("identity"))
            yield client, api, auth, agency
    finally:
        for host in (*workers, api):
            await host.stop()


async def test_each_shard_applies_its_customers_and_commits_the_others_records(runtime, deployed):
    client, api, auth, agency = deployed
    first, second = f"{GROUP}.shard0of2", f"{GROUP}.shard1of2"
    await runtime.bus.publish(METERING_DAILY_USAGE, [
        day(agency, EVEN, "2024-01-20", 1, values("5.000", "1.000")),
        day(agency, ODD, "2024-01-20", 1, values("6.000", "2.000")),
        day(agency, EVEN, "2024-01-21", 1, values("7.000", "1.000"))])

    async def detail(number: str) -> dict:
        return (await client.get(f"/api/v1/invoices/2401{number}", headers=auth)).json()

    async def health() -> str:
        return (await client.get("/ops/health")).text

    async def even_applied() -> bool:
        return len((await detail(EVEN)).get("daily", ())) == 2 and lag_of(await health(), first) == 0

    # shard 0 applies its customer's days, and its position passes the other shard's record too
    await wait_until(even_applied, what="shard 0's days applied and committed")
    html = await health()
    assert lag_of(html, second) == 5  # no worker for shard 1 yet: the 2 registrations and 3 days wait for it
    assert GROUP not in re.findall(r'data-group="([^"]+)"', html)  # the whole group runs as its shards only
    assert (await detail(ODD)).get("daily", []) == []
    listing = await api.service("billing").portal.invoice_list(agency, "2024/01")
    assert [i["customer_number"] for i in listing["items"]] == [EVEN]

    shard1 = build_host(runtime, ["billing"], shard=1)
    assert [c.group for c in shard1.consumers] == [] and not shard1.relays
    await shard1.start()
    try:
        assert [c.group for c in shard1.consumers] == [second] and not shard1.relays  # its shard, nothing else

        async def odd_applied() -> bool:
            return len((await detail(ODD)).get("daily", ())) == 1 and lag_of(await health(), second) == 0

        await wait_until(odd_applied, what="shard 1's day applied and committed")
        listing = await api.service("billing").portal.invoice_list(agency, "2024/01")
        assert [i["customer_number"] for i in listing["items"]] == [EVEN, ODD]
        assert listing["totals"]["generation_kwh"] == "18.00" and listing["totals"]["count"] == "2"
    finally:
        await shard1.stop()
    for wrong in (2, -1):  # a shard no group runs as: refused, not idle
        with pytest.raises(ValueError, match=f"shard {wrong}"):
            await build_host(runtime, ["billing"], shard=wrong).start()
