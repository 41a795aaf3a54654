"""Devices push readings; daily usage appears per customer and is revised by late readings."""

from __future__ import annotations

import asyncio

import pytest
from support import portal

from ppa_billing.customers import stream_of
from ppa_contracts.topics import METERING_DAILY_USAGE

CUSTOMER = {"customer_number": "1120240001", "serial_number": "HEMS0001", "name": "佐藤 花子",
            "base_fee": "980", "sell_unit_price": "16.00", "usage_unit_price": "27.00",
            "contract_start": "2024-01-01"}


async def eventually(check, timeout: float = 60.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(0.1)


@pytest.fixture
async def api(runtime):
    async with portal(runtime, ["identity", "billing", "metering"]) as p:
        created = await p.client.post("/api/v1/customers", json=CUSTOMER, headers=p.tokens["a"])
        code = created.json()["auth_code"]
        metering = p.host.service("metering")
        assert await eventually(lambda: metering.devices.authenticate("HEMS0001", code)), "registry never saw the device"
        yield p.client, p.tokens, {"Authorization": f"Bearer {code}"}


def reading(at: str, channel: str, kwh: str) -> dict:
    return {"at": at, "channel": channel, "kwh": kwh}


async def push(client, device, readings):
    return await client.post("/api/v1/devices/HEMS0001/readings", json={"readings": readings}, headers=device)


async def test_device_needs_its_serial_and_auth_code(api):
    client, _, device = api
    ok = [reading("2024-01-16T00:00:00+09:00", "pv_generation", "1.0")]
    wrong = await client.post("/api/v1/devices/HEMS0001/readings", json={"readings": ok},
                              headers={"Authorization": "Bearer WRONGWRONGWRONG1"})
    assert wrong.status_code == 401 and wrong.headers["content-type"] == "application/problem+json"
    unknown = await client.post("/api/v1/devices/NOPE/readings", json={"readings": ok}, headers=device)
    assert unknown.status_code == 401
    assert (await client.post("/api/v1/devices/HEMS0001/readings", json={"readings": ok})).status_code == 401


async def test_a_redelivered_event_of_a_deleted_customer_leaves_its_device_out(runtime):
    """After a crash the registry's consumer applies again what it had not committed: the customer's older events
    after its deletion must not let the deleted customer's device in, not even until the deletion comes again."""
    async with portal(runtime, ["identity", "billing", "metering"]) as p:
        a = p.tokens["a"]
        code = (await p.client.post("/api/v1/customers", json=CUSTOMER, headers=a)).json()["auth_code"]
        registry = p.host.service("metering").devices
        assert await eventually(lambda: registry.authenticate("HEMS0001", code)), "registry never saw the device"
        assert (await p.client.delete(f"/api/v1/customers/{CUSTOMER['customer_number']}", headers=a)).status_code == 204

        async def gone() -> bool:
            return await registry.authenticate("HEMS0001", code) is None

        assert await eventually(gone), "the deletion never reached the registry"
        history = await p.host.service("billing").events.read(stream_of(p.agency_ids["a"], CUSTOMER["customer_number"]))
        assert [e.type.rsplit(".", 2)[1] for e in history] == ["customer_registered", "customer_deleted"]
        for env in history:  # redelivered, in order
            await registry.on_event(env.payload(), env)
            assert await gone()
        ok = [reading("2024-01-16T00:00:00+09:00", "pv_generation", "1.0")]
        assert (await push(p.client, {"Authorization": f"Bearer {code}"}, ok)).status_code == 401


async def test_bad_bodies_are_422_problems_and_store_nothing(api):
    client, _, device = api
    broken = await client.post("/api/v1/devices/HEMS0001/readings", content=b"{oops", headers=device)
    assert broken.status_code == 422 and broken.headers["content-type"] == "application/problem+json"
    assert (await client.post("/api/v1/devices/HEMS0001/readings", json={"readings": "x"}, headers=device)).status_code == 422
    huge = [reading("2024-01-16T00:00:00+09:00", "pv_generation", "1")] * 10_001
    too_many = await push(client, device, huge)
    assert too_many.status_code == 422 and "10000" in too_many.json()["detail"]


async def test_batch_counts_rejects_and_duplicates(api):
    client, _, device = api
    batch = [
        reading("2024-01-16T00:00:00+09:00", "pv_generation", "100.000"),
        reading("2024-01-16T00:30:00", "pv_generation", "100.100"),           # no timezone
        reading("2024-01-16T00:30:00+09:00", "wind", "1"),                     # unknown channel
        reading("2099-01-01T00:00:00+09:00", "pv_generation", "1"),            # future
        reading("2024-01-16T00:30:00+09:00", "grid_export", "-1"),             # negative
        reading("2024-01-16T00:30:00+09:00", "grid_export", "50.000"),
    ]
    first = await push(client, device, batch)
    assert first.status_code == 202
    body = first.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    assert [r["index"] for r in body["rejected"]] == [1, 2, 3, 4]
    again = await push(client, device, [batch[0], batch[5]])
    assert again.json() == {"accepted": 0, "duplicates": 2, "rejected": []}


async def test_daily_usage_is_split_at_midnight_and_revised_by_a_late_reading(api, runtime):
    client, tokens, device = api
    a = tokens["a"]
    first = [reading("2024-01-16T12:00:00+09:00", "pv_generation", "100.000"),
             reading("2024-01-17T12:00:00+09:00", "pv_generation", "110.000"),
             reading("2024-01-16T12:00:00+09:00", "grid_export", "50.000"),
             reading("2024-01-17T12:00:00+09:00", "grid_export", "54.000")]
    assert (await push(client, device, first)).json()["accepted"] == 4
    url = "/api/v1/customers/1120240001/daily-usage?from=2024-01-16&to=2024-01-17"

    async def days():
        r = await client.get(url, headers=a)
        return r.json() if r.status_code == 200 and len(r.json()) == 2 else None

    split = await eventually(days)
    assert split == [
        {"date": "2024-01-16", "generation_kwh": "5.00", "sold_kwh": "2.00", "usage_kwh": "3.00", "estimated": True},
        {"date": "2024-01-17", "generation_kwh": "5.00", "sold_kwh": "2.00", "usage_kwh": "3.00", "estimated": True},
    ]
    late = [reading("2024-01-17T00:00:00+09:00", "pv_generation", "108.000"),
            reading("2024-01-17T00:00:00+09:00", "grid_export", "53.000")]
    assert (await push(client, device, late)).json()["accepted"] == 2

    async def revised():
        got = await days()
        return got if got and got[0]["generation_kwh"] == "8.00" else None

    final = await eventually(revised)
    assert final[0] == {"date": "2024-01-16", "generation_kwh": "8.00", "sold_kwh": "3.00", "usage_kwh": "5.00",
                        "estimated": False}
    assert final[1]["generation_kwh"] == "2.00" and final[1]["sold_kwh"] == "1.00"

    sub = await runtime.bus.subscribe("test-daily-events", [METERING_DAILY_USAGE])
    events = []
    try:
        for _ in range(60):
            events += await sub.fetch(timeout=0.5)
            if sum(e.envelope.type.endswith("daily_usage_revised.v1") for e in events) >= 2:
                break
    finally:
        await sub.close()
    revisions = [e.envelope.payload() for e in events if e.envelope.type.endswith("daily_usage_revised.v1")]
    day16 = next(r for r in revisions if r.date.isoformat() == "2024-01-16")
    assert str(day16.old.generation_kwh) == "5.000" and str(day16.new.generation_kwh) == "8.000"
    assert all(e.envelope.subject == "1120240001" for e in events)

    other = await client.get(url, headers=tokens["b"])
    assert other.status_code == 404
