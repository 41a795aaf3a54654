"""The lists' checkbox actions: 請求管理 → the selected invoices (or every match) issued in one confirmed action
with a progress page, or their CSV; 顧客管理 → the selected customers deleted after a confirmation, or their CSV.
CSRF on every form, another agency's numbers never touched; both runtimes."""

from __future__ import annotations

import asyncio
import re
from datetime import date
from decimal import Decimal

import pytest
from agency_site import agency_site
from support import eventually

from ppa_contracts import Envelope
from ppa_contracts.metering import DailyUsageComputed, DailyValues
from ppa_contracts.notify import EmailRequested
from ppa_billing.issuing import stream_of
from ppa_contracts.topics import METERING_DAILY_USAGE

HEADER = "顧客番号,製造番号,氏名,氏名(カナ),契約開始日,契約終了日,基本料金(円),売電単価(円),利用単価(円),メールアドレス"
NUMBERS = [f"11{n:08d}" for n in range(1, 6)]


def usage(agency_id: str, number: str, gen: str, sold: str) -> Envelope:
    g, s, z = Decimal(gen), Decimal(sold), Decimal(0)
    values = DailyValues(generation_kwh=g, sold_kwh=s, usage_kwh=g - s, import_kwh=z, battery_charge_kwh=z,
                         battery_discharge_kwh=z, estimated=False, reset=False, usage_clamped=False)
    return Envelope.wrap(DailyUsageComputed(agency_id=agency_id, customer_number=number, serial_number=f"S{number}",
                                            date=date(2024, 1, 20), values=values),
                         subject=number, correlation_id="t", aggregate_version=1)


@pytest.fixture
async def site(runtime):
    async with agency_site(runtime) as (agencies, host):
        a = agencies["a"]
        rows = [f"{n},S{n},顧客{n[-4:]},,2024/01/01,,980,16.00,27.00,{n}@example.jp" for n in NUMBERS]
        data = ("\r\n".join([HEADER, *rows]) + "\r\n").encode()
        await host.service("billing").customer_import.run(a.agency_id, data)
        settings = {"closing_day": "end_of_month", "rounding": "half_up", "issuer_name": "太陽電力",
                    "issuer_address": "東京都", "registration_number": ""}
        assert (await a.post("/agency/settings/billing", settings, "/agency/settings/billing")).status_code == 303
        await runtime.bus.publish(METERING_DAILY_USAGE, [usage(a.agency_id, n, "10.00", "4.00") for n in NUMBERS])

        async def listed():
            page = (await a.client.get("/agency/invoices", params={"month": "2024/01"})).text
            # lines exist from registration (計測データなし until their days arrive): wait for the days
            return page if "全 5 件" in page and "計測データなし" not in page else None

        await eventually(listed)
        yield agencies, host


async def _select(agency, path: str, numbers: list[str], **fields: str):
    token = await agency.token("/agency/invoices?month=2024/01" if "invoices" in path else "/agency/customers")
    return await agency.client.post(path, data={"csrf_token": token, "numbers": numbers, **fields})


async def test_selected_invoices_are_issued_in_one_confirmed_action_or_downloaded(site):
    agencies, host = site
    a, b = agencies["a"], agencies["b"]
    page = (await a.client.get("/agency/invoices", params={"month": "2024/01"})).text
    assert 'form="invoice-selection"' in page and "検索に一致する全 5 件を選択" in page
    chosen = [f"2401{n}" for n in NUMBERS[:3]]

    csv = await _select(a, "/agency/invoices/selection", chosen[:2], action="csv", month="2024/01")
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("利用月,請求番号") and [line.split(",")[1] for line in lines[1:]] == chosen[:2]

    forged = await a.client.post("/agency/invoices/selection", data={"csrf_token": "x", "numbers": chosen,
                                                                     "action": "issue", "month": "2024/01"})
    assert forged.status_code == 403
    confirm = await _select(a, "/agency/invoices/selection", chosen, action="issue", month="2024/01")
    # 6.00 kWh sold x 16.00 = 96; 6.00 kWh used x 27.00 = 162 + 980 = 1,142 each
    assert "3 件の請求書を発行し" in confirm.text and "合計 3,426 円" in confirm.text
    assert "全 0 件" not in confirm.text and "2401" + NUMBERS[3] not in confirm.text
    job = re.search(r'action="/agency/invoices/issue-jobs/([^"]+)"', confirm.text).group(1)
    assert (await b.post(f"/agency/invoices/issue-jobs/{job}", {})).status_code == 404  # not b's to start
    issued_list = (await a.client.get("/agency/invoices", params={"month": "2024/01"})).text
    assert "発行済" not in issued_list  # the confirmation issues nothing

    started = await a.post(f"/agency/invoices/issue-jobs/{job}", {})
    assert started.status_code == 303

    async def finished():
        text = (await a.client.get(f"/agency/invoices/issue-jobs/{job}")).text
        return text if "一括発行が完了しました" in text else None

    assert "発行 3 件" in await eventually(finished)
    again = await a.post(f"/agency/invoices/issue-jobs/{job}", {})
    assert again.status_code == 303  # a second click shows the job; nothing is issued twice
    issued_list = (await a.client.get("/agency/invoices", params={"month": "2024/01"})).text
    assert issued_list.count('<span class="badge issued">発行済</span>') == 3

    every = await _select(a, "/agency/invoices/selection", [], action="issue", month="2024/01", all_matching="1")
    assert "2 件の請求書を発行し" in every.text and "3 件は発行済または取消のため対象外です" in every.text
    other = await _select(b, "/agency/invoices/selection", chosen, action="issue", month="2024/01")
    assert "発行できる請求（未発行）が選択されていません" in other.text  # a's invoices are not b's to see


async def test_selected_customers_are_deleted_after_a_confirmation_or_downloaded(site):
    agencies, _ = site
    a, b = agencies["a"], agencies["b"]
    csv = await _select(a, "/agency/customers/selection", NUMBERS[:2], action="csv")
    assert [line.split(",")[0] for line in csv.content.decode("utf-8-sig").splitlines()[1:]] == NUMBERS[:2]
    none = await _select(b, "/agency/customers/selection", NUMBERS[:2], action="delete")
    assert "顧客が選択されていません" in none.text  # another agency's numbers are not found
    confirm = await _select(a, "/agency/customers/selection", NUMBERS[:2], action="delete")
    assert "次の 2 件の顧客を削除します" in confirm.text and "全 5 件" in (await a.client.get("/agency/customers")).text
    forged = await a.client.post("/agency/customers/selection/delete", data={"csrf_token": "x", "numbers": NUMBERS})
    assert forged.status_code == 403
    done = await _select(a, "/agency/customers/selection/delete", NUMBERS[:2])
    assert done.status_code == 303
    listing = (await a.client.get(done.headers["location"])).text
    assert "選択した顧客を削除しました。" in listing and "全 3 件" in listing and NUMBERS[0] not in listing


async def test_a_bulk_issue_stopped_part_way_is_resumed_without_a_second_mail(site):
    agencies, host = site
    a = agencies["a"]
    billing = host.service("billing")
    jobs, issue = billing.issue_jobs, billing.issuing.issue
    confirm = await _select(a, "/agency/invoices/selection", [], action="issue", month="2024/01", all_matching="1")
    job = re.search(r'action="/agency/invoices/issue-jobs/([^"]+)"', confirm.text).group(1)
    calls, stuck = 0, asyncio.Event()

    async def stops_at_the_third(agency_id, number, today=None):
        nonlocal calls
        calls += 1
        if calls == 3:
            await stuck.wait()  # the process stops here (never set): cancelled below, as a crash would end it
        return await issue(agency_id, number, today)

    billing.issuing.issue = stops_at_the_third
    await a.post(f"/agency/invoices/issue-jobs/{job}", {})
    await eventually(lambda: _done_at_least(jobs, a.agency_id, job, 2))
    jobs._tasks[job].cancel()
    await jobs.wait()
    billing.issuing.issue = issue
    progress = (await a.client.get(f"/agency/invoices/issue-jobs/{job}")).text
    assert "発行中です… 2 / 5 件" in progress  # its heartbeat is fresh: not resumed yet
    await jobs.jobs.update({"_id": job}, {"$set": {"beat": 0}})  # as if the process had been gone a while

    async def finished():
        text = (await a.client.get(f"/agency/invoices/issue-jobs/{job}")).text
        return text if "一括発行が完了しました" in text else None

    done = await eventually(finished)
    assert "発行 3 件" in done and "中断前に発行済 2 件" in done
    for number in NUMBERS:
        events = [e.payload() for e in await billing.events.read(stream_of(a.agency_id, f"2401{number}"))]
        mails = [e for e in events if isinstance(e, EmailRequested)]
        assert len(mails) == 1 and mails[0].recipient == f"{number}@example.jp", number


async def _done_at_least(jobs, agency_id: str, job_id: str, count: int) -> bool:
    return (await jobs.get(agency_id, job_id))["done"] >= count


async def test_bulk_issuing_says_which_issuer_fields_are_missing_and_prepares_nothing(site):
    agencies, host = site
    a = agencies["a"]
    settings = {"closing_day": "end_of_month", "rounding": "half_up", "issuer_name": "太陽電力",
                "issuer_address": "", "registration_number": ""}
    assert (await a.post("/agency/settings/billing", settings, "/agency/settings/billing")).status_code == 303
    confirm = await _select(a, "/agency/invoices/selection", [f"2401{n}" for n in NUMBERS[:2]], month="2024/01")
    assert confirm.status_code == 200
    assert "事業者設定で発行者住所を登録してください。" in confirm.text and 'href="/agency/settings/billing"' in confirm.text
    assert "件を発行する" not in confirm.text  # no button, no job
