"""顧客管理 → CSV一括登録 as a person uses it: upload, every row's result before anything is written, import,
progress and result; CSRF on every form, another agency kept out; both runtimes."""

from __future__ import annotations

import re

import pytest
from agency_site import agency_site
from support import eventually

CUSTOMER_HEADER = "顧客番号,製造番号,氏名,氏名(カナ),契約開始日,契約終了日,基本料金(円),売電単価(円),利用単価(円),メールアドレス"


@pytest.fixture
async def site(runtime):
    async with agency_site(runtime) as s:
        yield s


def csv_bytes(rows: list[str]) -> bytes:
    return ("\r\n".join([CUSTOMER_HEADER, *rows]) + "\r\n").encode("cp932")


async def _upload(agency, data: bytes, token: str | None = None):
    token = token if token is not None else await agency.token("/agency/customers/import")
    return await agency.client.post("/agency/customers/import", data={"csrf_token": token},
                                    files={"file": ("顧客.csv", data, "text/csv")})


async def test_preview_then_import_with_progress_and_errors_named(site):
    agencies, _ = site
    a, b = agencies["a"], agencies["b"]
    rows = [f"11{n:08d},PG{n:06d},顧客{n:04d},コキャク,2024/01/16,,980,16.00,27.00," for n in range(1, 21)]
    rows[4] = "1100000005,PG000005,顧客0005,,2024/01/16,,980,16.00,abc,"
    page = await _upload(a, csv_bytes(rows))
    assert page.status_code == 200, page.text
    assert re.search(r'id="count-new">19<', page.text) and re.search(r'id="count-error">1<', page.text)
    assert "利用単価(円): 利用単価は0以上の数値（小数点以下2桁まで）で入力してください。" in page.text
    listing = await a.client.get("/agency/customers")
    assert "全 0 件" in listing.text  # nothing written by the preview

    job = re.search(r'action="/agency/customers/import/([^"]+)"', page.text).group(1)
    refused = await a.client.post(f"/agency/customers/import/{job}", data={"csrf_token": "forged"})
    assert refused.status_code == 403 and "画面の有効期限" in refused.text
    other = await b.post(f"/agency/customers/import/{job}", {}, token_from="/agency/customers")
    assert other.status_code == 404  # another agency's import is not found, not started

    started = await a.post(f"/agency/customers/import/{job}", {}, token_from="/agency/customers")
    assert started.status_code == 303 and started.headers["location"] == f"/agency/customers/import/{job}"

    async def finished():
        text = (await a.client.get(f"/agency/customers/import/{job}")).text
        return text if "取り込みが完了しました" in text else None

    done = await eventually(finished)
    assert "新規 19 件、変更 0 件、変更なし 0 件、エラー 1 件" in done and "1100000005" in done
    assert "全 19 件" in (await a.client.get("/agency/customers")).text
    assert "全 0 件" in (await b.client.get("/agency/customers")).text
    again = await a.post(f"/agency/customers/import/{job}", {}, token_from="/agency/customers")
    assert again.status_code == 303  # a second start only shows the result: nothing runs twice
    assert "全 19 件" in (await a.client.get("/agency/customers")).text

    same = await _upload(a, csv_bytes(rows))
    assert re.search(r'id="count-unchanged">19<', same.text) and "登録・変更する行はありません" in same.text


async def test_an_unreadable_file_or_a_forged_form_is_refused_in_japanese(site):
    agencies, _ = site
    a = agencies["a"]
    wrong = await _upload(a, "氏名,番号\r\nx,1\r\n".encode())
    assert wrong.status_code == 422 and "1行目の見出しが顧客一覧CSVと一致しません" in wrong.text
    none = await _upload(a, b"")
    assert none.status_code == 422 and "取り込むCSVファイルを選択してください。" in none.text
    forged = await _upload(a, csv_bytes([]), token="forged")
    assert forged.status_code == 403
