"""Agencies register and manage PPA customers through the JSON API; each agency sees only its own."""

from __future__ import annotations

import asyncio

import pytest
from support import portal

from ppa_billing.customers import hash_auth_code
from ppa_contracts.topics import BILLING_CUSTOMER

SEED = {
    "customer_number": "1120230030", "serial_number": "E2300030", "name": "山田 太郎", "name_kana": "ヤマダ タロウ",
    "contract_start": "2023-06-01", "contract_end": None, "base_fee": "980", "sell_unit_price": "16.00",
    "usage_unit_price": "27.00", "notes": "パネル 4.5kW / PCS 4.0kW", "email": "yamada@example.jp",
}


@pytest.fixture
async def api(runtime):
    async with portal(runtime, ["identity", "billing"]) as p:
        yield p.client


async def token(client, user: str, password: str = "password123") -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", data={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_token_needs_the_right_password_and_routes_need_a_token(api):
    bad = await api.post("/api/v1/auth/token", data={"username": "a@example.jp", "password": "wrong-pass1"})
    assert bad.status_code == 401 and bad.headers["content-type"] == "application/problem+json"
    unknown = await api.post("/api/v1/auth/token", data={"username": "zz@example.jp", "password": "wrong-pass1"})
    assert unknown.json()["detail"] == bad.json()["detail"]  # no hint which part was wrong
    assert (await api.get("/api/v1/customers")).status_code == 401
    forged = await api.get("/api/v1/customers", headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401


async def test_register_read_edit_reissue_delete_a_customer(api):
    a = await token(api, "a@example.jp")
    created = await api.post("/api/v1/customers", json=SEED, headers=a)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["usage_unit_price"] == "27.00" and body["base_fee"] == "980"
    code = body["auth_code"]
    assert len(code) == 16 and code.isalnum()

    dup = await api.post("/api/v1/customers", json=SEED, headers=a)
    assert dup.status_code == 409 and dup.json()["errors"][0]["field"] in ("customer_number", "serial_number")

    edited = await api.patch("/api/v1/customers/1120230030", json={"usage_unit_price": "28.50"}, headers=a)
    assert edited.status_code == 200 and edited.json()["usage_unit_price"] == "28.50"
    assert edited.json()["auth_code"] == code
    refused = await api.patch("/api/v1/customers/1120230030", json={"auth_code": "x" * 16}, headers=a)
    assert refused.status_code == 422

    reissued = await api.post("/api/v1/customers/1120230030/auth-code", headers=a)
    assert reissued.status_code == 200 and reissued.json()["auth_code"] != code

    listing = await api.get("/api/v1/customers", params={"q": "ヤマダ"}, headers=a)
    assert listing.json()["total"] == 1 and listing.json()["items"][0]["customer_number"] == "1120230030"
    assert (await api.get("/api/v1/customers", params={"q": "nobody"}, headers=a)).json()["total"] == 0

    assert (await api.delete("/api/v1/customers/1120230030", headers=a)).status_code == 204
    assert (await api.get("/api/v1/customers/1120230030", headers=a)).status_code == 404


async def test_invalid_customer_is_refused_field_by_field_and_nothing_is_stored(api):
    a = await token(api, "a@example.jp")
    bad = {**SEED, "customer_number": "2120230030", "contract_start": "2023-06-01", "contract_end": "2023-05-01",
           "sell_unit_price": "16.001", "base_fee": "-1"}
    r = await api.post("/api/v1/customers", json=bad, headers=a)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"customer_number", "contract_end", "sell_unit_price", "base_fee"}
    assert (await api.get("/api/v1/customers", headers=a)).json()["total"] == 0
    malformed = await api.post("/api/v1/customers", content=b"{not json", headers={**a, "content-type": "application/json"})
    assert malformed.status_code == 422


async def test_another_agencys_customer_is_not_found(api):
    a = await token(api, "a@example.jp")
    b = await token(api, "b@example.jp")
    assert (await api.post("/api/v1/customers", json=SEED, headers=a)).status_code == 201
    assert (await api.get("/api/v1/customers/1120230030", headers=b)).status_code == 404
    assert (await api.patch("/api/v1/customers/1120230030", json={"name": "乗っ取り"}, headers=b)).status_code == 404
    assert (await api.delete("/api/v1/customers/1120230030", headers=b)).status_code == 404
    assert (await api.post("/api/v1/customers/1120230030/auth-code", headers=b)).status_code == 404
    assert (await api.get("/api/v1/customers", headers=b)).json() == {"items": [], "total": 0}
    assert (await api.get("/api/v1/customers/1120230030", headers=a)).json()["name"] == "山田 太郎"


async def test_customer_events_carry_only_the_auth_code_hash(api, runtime):
    a = await token(api, "a@example.jp")
    code = (await api.post("/api/v1/customers", json=SEED, headers=a)).json()["auth_code"]
    sub = await runtime.bus.subscribe("test-customer-events", [BILLING_CUSTOMER])
    got = []
    try:
        for _ in range(60):
            got += await sub.fetch(timeout=0.5)
            if got:
                break
    finally:
        await sub.close()
    assert got, "customer_registered was not published"
    data = got[0].envelope.data
    assert got[0].envelope.type == "jp.ppa.billing.customer_registered.v1"
    assert data["auth_code_hash"] == hash_auth_code(code)
    assert code not in got[0].envelope.to_json().decode()
    await asyncio.sleep(0)
