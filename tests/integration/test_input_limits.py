"""Every input has bounds: lengths, characters, types, body size; a refused request changes nothing; exported CSV
cells cannot run as formulas while stored text keeps what the user typed."""

from __future__ import annotations

import csv
import io
import json

import pytest
from support import portal

SEED = {
    "customer_number": "1120230030", "serial_number": "E2300030", "name": "山田 太郎", "name_kana": "ヤマダ タロウ",
    "contract_start": "2023-06-01", "contract_end": None, "base_fee": "980", "sell_unit_price": "16.00",
    "usage_unit_price": "27.00", "notes": "パネル 4.5kW\nPCS 4.0kW", "email": "yamada@example.jp",
}
CUSTOMERS = "/api/v1/customers"
FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "@SUM(1)", "\t=1+1", "-2+3"]  # a CR is refused in a name


@pytest.fixture
async def api(runtime):
    async with portal(runtime, ["identity", "billing"], agencies=("a",)) as p:
        yield p.client, p.tokens["a"]


def raw_json(body: dict) -> bytes:
    """JSON as an attacker sends it: json.dumps writes a lone surrogate as the escape `\\ud800`."""
    return json.dumps(body).encode()


async def test_exported_csv_cells_cannot_start_a_formula_and_stored_names_stay_as_typed(api):
    client, a = api
    for i, name in enumerate(FORMULAS):
        r = await client.post(CUSTOMERS, headers=a, json={**SEED, "customer_number": f"112023003{i}",
                                                          "serial_number": f"E230003{i}", "name": name,
                                                          "name_kana": name, "notes": name})
        assert r.status_code == 201, r.text
        assert (r.json()["name"], r.json()["name_kana"], r.json()["notes"]) == (name, name, name)
    exported = (await client.get(f"{CUSTOMERS}.csv", headers=a)).content.decode("utf-8-sig")
    header, *rows = list(csv.reader(io.StringIO(exported, newline="")))
    assert header[2:4] == ["氏名", "氏名(カナ)"]
    by_number = {row[0]: row for row in rows}
    for i, name in enumerate(FORMULAS):
        row = by_number[f"112023003{i}"]
        assert row[2] == row[3] == "'" + name  # the way a spreadsheet then shows it: as text, with no formula run
        assert row[6] == "980" and row[7] == "16.00"  # numbers untouched


@pytest.mark.parametrize(("field", "value"), [
    ("name", "名" * 101), ("name_kana", "ア" * 101), ("notes", "x" * 2001), ("email", "a" * 250 + "@example.jp"),
    ("name", "\ud800"), ("notes", "\udfff"), ("name", "山田\x07"), ("name_kana", "ヤマダ\nタロウ"), ("notes", "a\x00b"),
])
async def test_text_over_its_length_or_with_control_characters_is_refused_naming_the_field_and_claims_nothing(
        api, field, value):
    client, a = api
    r = await client.post(CUSTOMERS, headers={**a, "content-type": "application/json"},
                          content=raw_json({**SEED, field: value}))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == [field]
    # nothing stored, no serial held: the same customer is registered at once
    assert (await client.get(CUSTOMERS, headers=a)).json()["total"] == 0
    assert (await client.post(CUSTOMERS, headers=a, json=SEED)).status_code == 201
    edited = await client.patch(f"{CUSTOMERS}/{SEED['customer_number']}", headers={**a, "content-type":
                                "application/json"}, content=raw_json({field: value}))
    assert edited.status_code == 422 and [e["field"] for e in edited.json()["errors"]] == [field]
    assert (await client.get(f"{CUSTOMERS}/{SEED['customer_number']}", headers=a)).json()[field] == SEED[field]


async def test_types_are_strict_and_unknown_fields_refused(api):
    client, a = api
    for body in ({**SEED, "base_fee": True}, {**SEED, "name": 123}, {**SEED, "admin": True}):
        r = await client.post(CUSTOMERS, headers=a, json=body)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
    defaults = (await client.get("/api/v1/billing/settings", headers=a)).json()
    for body in ({"closing_day": True}, {"closing_day": 15, "issuer_name": "\ud800"},
                 {"closing_day": 15, "issuer_address": "東京都\x1b"}, {"closing_day": 15, "extra": 1}):
        r = await client.put("/api/v1/billing/settings", headers={**a, "content-type": "application/json"},
                             content=raw_json(body))
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
        field = next(iter(k for k in body if k != "closing_day"), "closing_day")
        assert field in {e["field"] for e in r.json()["errors"]}
    assert (await client.get("/api/v1/billing/settings", headers=a)).json() == defaults
    assert (await client.get(CUSTOMERS, headers=a)).json()["total"] == 0


async def test_a_body_over_the_limit_is_refused_with_413_before_anything_is_read(api):
    client, a = api
    big = raw_json({**SEED, "name": "x" * (1024 * 1024)})
    r = await client.post(CUSTOMERS, headers={**a, "content-type": "application/json"}, content=big)
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["title"] == "Content Too Large"

    async def chunks():  # no Content-Length: counted as it arrives
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    r = await client.post(CUSTOMERS, headers={**a, "content-type": "application/json"}, content=chunks())
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json", r.text
    assert (await client.get(CUSTOMERS, headers=a)).json()["total"] == 0


async def test_full_width_digits_and_half_width_kana_in_a_search_find_the_customer(api):
    client, a = api
    assert (await client.post(CUSTOMERS, headers=a, json=SEED)).status_code == 201
    for q in ("ﾔﾏﾀﾞ", "１１２０２３００３０", "ＹＡＭＡＤＡ＠", "ヤマダ"):
        listing = (await client.get(CUSTOMERS, params={"q": q}, headers=a)).json()
        assert [c["customer_number"] for c in listing["items"]] == ["1120230030"], q
    exported = (await client.get(f"{CUSTOMERS}.csv", params={"q": "ﾀﾛｳ"}, headers=a)).content.decode("utf-8-sig")
    assert "1120230030" in exported
