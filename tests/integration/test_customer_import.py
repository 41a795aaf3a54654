"""Agencies import customers from a CSV of the customer list's columns: a preview first, then the import; both
runtimes."""

from __future__ import annotations

import pytest
from support import portal

from ppa_billing.customers import hash_auth_code

HEADER = "顧客番号,製造番号,氏名,氏名(カナ),契約開始日,契約終了日,基本料金(円),売電単価(円),利用単価(円),メールアドレス"


def row(n: int, serial: str = "", name: str = "", base_fee: str = "980", start: str = "2024/01/16") -> str:
    return (f"11{n:08d},{serial or f'IMP{n:08d}'},{name or f'顧客{n:04d}'},コキャク,{start},,{base_fee},16.00,27.00,"
            f"c{n}@example.jp")


def csv_of(*rows: str, bom: bool = True, encoding: str = "utf-8") -> bytes:
    text = "\r\n".join([HEADER, *rows]) + "\r\n"
    return (("\ufeff" if bom else "") + text).encode(encoding)


@pytest.fixture
async def api(runtime):
    async with portal(runtime, ["identity", "billing"]) as p:
        yield p


async def _import(api, data: bytes, agency: str = "a", dry_run: bool = False):
    r = await api.client.post(f"/api/v1/customer-imports?dry_run={str(dry_run).lower()}", content=data,
                              headers={**api.tokens[agency], "Content-Type": "text/csv"})
    return r


async def test_preview_writes_nothing_then_import_writes_good_rows_and_reports_bad_ones(api):
    data = csv_of(row(1), row(2), row(3, base_fee="-5"), row(4, serial="IMP00000001"), row(5, start="2024/13/01"))
    preview = await _import(api, data, dry_run=True)
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["counts"] == {"new": 2, "changed": 0, "unchanged": 0, "error": 3}
    errors = {r["line"]: r["errors"] for r in body["rows"] if r["status"] == "error"}
    assert errors[4] == ["基本料金(円): 基本料金は0以上の数値（小数点以下2桁まで）で入力してください。"]
    assert errors[5] == ["製造番号: 2行目と同じ製造番号です。"]
    assert errors[6] == ["契約開始日: 契約開始日はYYYY-MM-DDの形式で正しい日付を入力してください。"]
    listed = await api.client.get("/api/v1/customers", headers=api.tokens["a"])
    assert listed.json()["total"] == 0  # the preview wrote nothing

    done = await _import(api, data)
    assert done.json()["counts"] == body["counts"]
    listed = (await api.client.get("/api/v1/customers", headers=api.tokens["a"])).json()
    assert [c["customer_number"] for c in listed["items"]] == ["1100000001", "1100000002"]
    one = (await api.client.get("/api/v1/customers/1100000001", headers=api.tokens["a"])).json()
    assert one["contract_start"] == "2024-01-16" and one["base_fee"] == "980" and one["sell_unit_price"] == "16.00"
    stored = await api.host.service("billing").docs.collection("customers").get(f"{api.agency_ids['a']}:1100000001")
    assert stored["auth_code_hash"] == hash_auth_code(one["auth_code"]) and stored["_v"] == 1

    again = await _import(api, data)  # the same file again changes nothing
    assert again.json()["counts"] == {"new": 0, "changed": 0, "unchanged": 2, "error": 3}
    same = (await api.client.get("/api/v1/customers/1100000001", headers=api.tokens["a"])).json()
    assert same["updated_at"] == one["updated_at"] and same["auth_code"] == one["auth_code"]


async def test_changed_rows_keep_notes_and_code_and_shift_jis_is_read(api):
    await _import(api, csv_of(row(7), row(8)))
    before = (await api.client.get("/api/v1/customers/1100000007", headers=api.tokens["a"])).json()
    changed = csv_of(row(7, name="山田 花子", base_fee="1200"), row(8), bom=False, encoding="cp932")
    preview = (await _import(api, changed, dry_run=True)).json()
    assert [r["status"] for r in preview["rows"]] == ["changed", "unchanged"]
    result = (await _import(api, changed)).json()
    assert result["counts"]["changed"] == 1
    after = (await api.client.get("/api/v1/customers/1100000007", headers=api.tokens["a"])).json()
    assert after["name"] == "山田 花子" and after["base_fee"] == "1200" and after["auth_code"] == before["auth_code"]


async def test_rows_are_scoped_to_the_agency_and_a_serial_of_another_agency_is_refused(api):
    await _import(api, csv_of(row(11)), agency="a")
    other = (await _import(api, csv_of(row(11), row(12, serial="IMP00000011")), agency="b")).json()
    # the same customer number is another agency's own customer; the serial number is taken across agencies
    assert [r["status"] for r in other["rows"]] == ["error", "error"]
    assert other["rows"][0]["errors"] == ["製造番号: この製造番号は既に登録されています。"]
    listed = (await api.client.get("/api/v1/customers", headers=api.tokens["b"])).json()
    assert listed["total"] == 0


async def test_a_file_that_cannot_be_read_is_refused_as_a_whole(api):
    wrong_header = "番号,名前\r\n1,2\r\n".encode()
    r = await _import(api, wrong_header)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert "見出し" in r.json()["detail"]
    latin = await _import(api, HEADER.encode("utf-8") + b"\r\n\xff\xfe\xfa,\r\n")
    assert latin.status_code == 422 and "文字コード" in latin.json()["detail"]
    unauth = await api.client.post("/api/v1/customer-imports", content=csv_of(row(1)))
    assert unauth.status_code == 401


async def test_a_run_in_batches_sees_what_changed_between_them(api, monkeypatch):
    """A run reads what it needs once (on FerretDB) or batch by batch: a serial registered, a customer changed and
    one deleted by others while the run is between batches are still refused, raced or written back; a claim a
    stopped run left for its own row is taken up; the file's own repeats across batches are refused."""
    import ppa_billing.customer_import as customer_import

    monkeypatch.setattr(customer_import, "BATCH", 2)
    billing = api.host.service("billing")
    agency_id = api.agency_ids["a"]
    await _import(api, csv_of(row(40), row(41)))
    # a claim a stopped run of this file left for row 45 (claimed, no event yet)
    await billing.customers.serials.insert({"_id": "IMP00000045", "stream": f"customer:{agency_id}:1100000045",
                                            "at": 0})
    data = csv_of(row(42), row(43), row(44, serial="IMP00000099"), row(40, name="変更 後"), row(45),
                  row(46, serial="IMP00000042"), row(41, name="削除 済"))
    steps = []

    async def between(done: int, total: int) -> None:
        steps.append(done)
        if done == 2:  # others act while batch 1 is written and batch 2 not yet
            created = await api.client.post("/api/v1/customers", headers=api.tokens["a"], json={
                "customer_number": "1100000098", "serial_number": "IMP00000099", "name": "先 客", "base_fee": "980",
                "sell_unit_price": "16.00", "usage_unit_price": "27.00", "contract_start": "2024-01-01"})
            assert created.status_code == 201, created.text
            changed = await api.client.patch("/api/v1/customers/1100000040", headers=api.tokens["a"],
                                             json={"name": "別 の人"})
            assert changed.status_code == 200, changed.text
            gone = await api.client.delete("/api/v1/customers/1100000041", headers=api.tokens["a"])
            assert gone.status_code in (200, 204), gone.text

    rows = await billing.customer_import.run(agency_id, data, between)
    assert steps == [2, 4, 6, 7]
    result = {r.customer_number: (r.status, list(r.errors.values())) for r in rows}
    assert result["1100000042"] == ("new", []) and result["1100000043"] == ("new", [])
    assert result["1100000044"] == ("error", ["この製造番号は既に登録されています。"])
    # changed by another between the batches: judged against what the run read (then it lost the race and nothing
    # of the row is written) or against the change (then the file's row is a change on top of it), never between
    raced = result["1100000040"][0] == "error"
    assert raced or result["1100000040"] == ("changed", [])
    assert not raced or "同時に更新" in result["1100000040"][1][0]
    assert result["1100000045"] == ("new", [])  # its own claim from the stopped run
    assert result["1100000046"] == ("error", ["この製造番号は既に登録されています。"])  # row 42's, batch 1
    assert result["1100000041"][0] == "new"  # deleted since: registered again, as a new row of the file is
    listed = (await api.client.get("/api/v1/customers?per_page=50", headers=api.tokens["a"])).json()
    names = {c["customer_number"]: c["name"] for c in listed["items"]}
    assert names["1100000040"] == ("別 の人" if raced else "変更 後") and names["1100000041"] == "削除 済"
    assert {"1100000042", "1100000043", "1100000045", "1100000098"} <= set(names)
    assert "1100000044" not in names and "1100000046" not in names
