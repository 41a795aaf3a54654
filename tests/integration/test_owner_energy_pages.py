"""「電力データを見る」 through the gateway on both runtimes: a proved home's day, month and year with the TOU fees,
CSV in UTF-8 with BOM and Shift_JIS, 見守りサービス; another owner and a detached owner get 404."""

from __future__ import annotations

import pytest
from owner_support import (csrf_of, customer_with_device, owner_client, owner_id_of, prove_home, registers,
                           set_prices)

from support import eventually, portal

PLAN = [("weekday", "07:00", "23:00", "35.50"), ("weekday", "23:00", "07:00", "20.25"),
        ("holiday", "00:00", "00:00", "25.00")]
# 2024-05-02 a Thursday, 2024-05-03 憲法記念日 (a Friday)
READINGS = (registers("2024-05-02", "06:30", "grid_import", ["100.0", "101.0", "103.0"])
            + registers("2024-05-03", "07:00", "grid_import", ["103.0", "104.5"])
            + registers("2024-05-02", "12:00", "pv_generation", ["10.0", "14.0"])
            + registers("2024-05-02", "12:00", "grid_export", ["5.0", "7.0"])
            + registers("2024-05-02", "12:00", "battery_charge", ["1.0", "2.0"])
            + registers("2024-05-02", "19:00", "battery_discharge", ["3.0", "3.5"]))


@pytest.fixture
async def site(runtime):
    async with portal(runtime, ["identity", "billing", "metering"]) as p:
        device = await customer_with_device(p)
        pushed = await p.client.post(f"/api/v1/devices/{device['serial']}/readings", json={"readings": READINGS},
                                     headers={"Authorization": f"Bearer {device['code']}"})
        assert pushed.status_code == 202 and pushed.json()["accepted"] == len(READINGS)
        client = await owner_client(p)
        await set_prices(p, await owner_id_of(p, client), "16.00", PLAN)
        assert (await prove_home(client, device["serial"], device["code"])).status_code == 303
        [product_id] = (await p.host.service("identity").owners.load(await owner_id_of(p, client))).homes
        intervals = p.host.service("metering").intervals

        async def projected():
            found = await intervals.months_of(device["serial"], ["2024-05"])
            return found and found[0]["days"].get("03", {}).get("totals", {}).get("grid_import") == "1.500" or None

        assert await eventually(projected, timeout=60)
        yield p, client, device, f"/mypage/energy/{product_id}"
        await client.aclose()


def cells(html: str, row_id: str, attribute: str = "id") -> list[str]:
    import re

    row = re.search(rf'<tr {attribute}="{row_id}">(.*?)</tr>', html, re.S).group(1)
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]


async def test_day_month_and_year_show_energy_ratios_and_fees(site):
    p, client, device, url = site
    day = await client.get(url, params={"view": "day", "at": "2024-05-02"})
    assert day.status_code == 200
    html = day.text
    assert "2024年5月2日" in html and html.count('class="bar generation"') == 48
    # 発電量 4, 売電量 2, 買電量 3, 自家消費 2, 充電 1, 放電 0.5, 消費量 4 − 2 + 3 + 0.5 − 1 = 4.5
    assert cells(html, "totals", "class") == ["合計", "4.00", "2.00", "3.00", "2.00", "1.00", "0.50", "4.50"]
    assert "蓄電池 充電" in html and "50.0 %" in html and "33.3 %" in html
    assert cells(html, "sell-fee") == ["売電料金", "2.00", "16.00", "32"]
    assert cells(html, "buy-fee")[-1] == "91"  # 2 × 35.50 + 1 × 20.25 = 91.25

    month = await client.get(url, params={"view": "month", "at": "2024-05"})
    assert "2024年5月" in month.text and "5/3（金）" in month.text
    # the holiday's 1.5 kWh at 07:00 is priced as 土日祝 (25.00), not 平日 peak: 71 + 20.25 + 37.5 = 128.75
    assert cells(month.text, "buy-fee")[-1] == "128"
    assert "土日祝 00:00〜24:00" in month.text and "37" in month.text
    year = await client.get(url, params={"view": "year", "at": "2024"})
    assert "5月" in year.text and cells(year.text, "buy-fee")[-1] == "128"
    assert '?view=month&amp;at=2024-05' in year.text
    nav = await client.get(url, params={"view": "month", "at": "2024-05"})
    assert 'href="?view=month&amp;at=2024-04"' in nav.text and 'href="?view=month&amp;at=2024-06"' in nav.text

    bad = await client.get(url, params={"view": "day", "at": "2024-13-01"})
    assert bad.status_code == 422 and "YYYY-MM-DD の形式" in bad.text


async def test_csv_is_what_is_shown_in_utf8_with_bom_or_shift_jis(site):
    p, client, device, url = site
    utf8 = await client.get(f"{url}/csv", params={"view": "month", "at": "2024-05"})
    assert utf8.status_code == 200 and utf8.content.startswith("\ufeff".encode())
    text = utf8.content.decode("utf-8-sig")
    lines = text.split("\r\n")
    assert lines[0].startswith("日付,発電量(kWh),売電量(kWh),買電量(kWh)")
    assert any(line.startswith("合計,4.00,2.00,4.50") for line in lines)
    assert "買電料金(円),128" in text and "売電料金(円),32" in text
    sjis = await client.get(f"{url}/csv", params={"view": "day", "at": "2024-05-02", "encoding": "shift_jis"})
    assert sjis.content.decode("cp932").startswith("時刻,発電量(kWh)")


async def test_watch_service_shows_the_home_connected_since_its_first_reading(site):
    p, client, device, url = site
    page = await client.get(url, params={"view": "day", "at": "2024-05-02"})
    # the readings are from 2024: data arrived, but not within the last day
    assert "未接続" in page.text and "2024/05/02 06:30 からデータを受信" in page.text


async def test_another_owner_and_a_detached_owner_get_404(site):
    p, client, device, url = site
    stranger = await owner_client(p)
    assert (await stranger.get(url)).status_code == 404
    assert (await stranger.get(f"{url}/csv")).status_code == 404
    # the stranger proving nothing about the same serial still sees nothing
    assert (await prove_home(stranger, device["serial"], "WRONGWRONGWRONG1")).status_code == 422
    product_id = url.rsplit("/", 1)[1]
    profile = await client.get("/mypage/profile")
    assert (await client.post(f"/mypage/products/{product_id}/detach",
                              data={"csrf_token": csrf_of(profile.text)})).status_code == 303
    assert (await client.get(url)).status_code == 404
    assert (await client.get(f"{url}/csv", params={"view": "year", "at": "2024"})).status_code == 404
    await stranger.aclose()


async def test_the_household_sees_its_invoices_and_the_pdf_of_issued_ones_only(site):
    p, client, device, url = site
    portal_ = p.host.service("billing").portal
    agency_id = p.agency_ids["a"]

    async def drafted():  # the month of 05-02 … 05-03 (the months since the contract start without readings too)
        return [i for i in await portal_.customer_invoices(agency_id, device["number"]) if i["metered_days"]] or None

    [may] = await eventually(drafted, timeout=60)
    listed = await client.get(f"{url}/invoices")
    assert listed.status_code == 200 and may["invoice_number"] in listed.text and "確定前（下書き）" in listed.text
    draft = await client.get(f"{url}/invoices/{may['invoice_number']}")
    assert draft.status_code == 200 and "この請求は確定前です" in draft.text and ".pdf" not in draft.text
    assert (await client.get(f"{url}/invoices/{may['invoice_number']}.pdf")).status_code == 404

    saved = await p.client.put("/api/v1/billing/settings", headers=p.tokens["a"], json={
        "closing_day": 15, "rounding": "half_up", "issuer_name": "見守り電力株式会社",
        "issuer_address": "東京都中央区日本橋兜町1-13", "registration_number": "T1234567890123"})
    assert saved.status_code == 200, saved.text

    async def issue():
        r = await p.client.post(f"/api/v1/invoices/{may['invoice_number']}/issue", headers=p.tokens["a"])
        return r if r.status_code == 201 else None

    assert await eventually(issue, timeout=30)
    detail = await client.get(f"{url}/invoices/{may['invoice_number']}")
    assert "発行済" in detail.text and "確定前" not in detail.text
    pdf = await client.get(f"{url}/invoices/{may['invoice_number']}.pdf", params={"revision": "1"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    # another household's invoice of the same agency, through this home: 404; another owner: 404
    neighbour = await customer_with_device(p)
    await p.client.post(f"/api/v1/devices/{neighbour['serial']}/readings", json={"readings": READINGS},
                        headers={"Authorization": f"Bearer {neighbour['code']}"})

    async def neighbour_drafted():
        return await portal_.customer_invoices(agency_id, neighbour["number"]) or None

    [theirs, *_] = await eventually(neighbour_drafted, timeout=60)
    assert (await client.get(f"{url}/invoices/{theirs['invoice_number']}")).status_code == 404
    stranger = await owner_client(p)
    assert (await stranger.get(f"{url}/invoices")).status_code == 404
    assert (await stranger.get(f"{url}/invoices/{may['invoice_number']}.pdf")).status_code == 404
    await stranger.aclose()


async def test_any_date_range_reads_the_months_it_touches_and_prices_its_days(site):
    p, client, device, url = site
    both = await client.get(url, params={"view": "range", "at": "2024-05-02~2024-05-03"})
    assert both.status_code == 200 and "2024年5月2日〜2024年5月3日" in both.text
    assert cells(both.text, "buy-fee")[-1] == "128"  # 71 + 20.25 + 37.5 (the holiday at 25.00)
    assert 'href="?view=range&amp;at=2024-04-30~2024-05-01"' in both.text  # 前へ moves by the range's length
    holiday = await client.get(url, params={"view": "range", "at": "2024-05-03〜2024-05-03"})
    assert cells(holiday.text, "buy-fee")[-1] == "37"
    across = await client.get(url, params={"view": "range", "at": "2024-04-25~2024-05-02"})
    assert cells(across.text, "buy-fee")[-1] == "91" and "5/2（木）" in across.text
    csv = await client.get(f"{url}/csv", params={"view": "range", "at": "2024-05-02~2024-05-03"})
    assert "買電料金(円),128" in csv.content.decode("utf-8-sig")
    reversed_ = await client.get(url, params={"view": "range", "at": "2024-05-03~2024-05-02"})
    assert reversed_.status_code == 422 and "開始日は終了日以前" in reversed_.text
    too_long = await client.get(url, params={"view": "range", "at": "2023-01-01~2024-05-02"})
    assert too_long.status_code == 422 and "366日以内" in too_long.text
