"""The lists' checkbox column (seed 004's leftmost column): on 請求管理, the selected invoices (or every match of
the search) → 請求書発行 (one confirmation naming the count and the total, then a progress page) or their CSV; on
顧客管理, the selected customers → 削除 (after a confirmation) or their CSV. Every action is scoped to the session's
agency (a number of another agency is simply not found) and every form carries the session's CSRF token."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ppa_billing.domain.settings import missing_for_issue
from ppa_gateway.billing_pages import CSRF_FAILED, _agency, _billing, _download, _login, _not_found, _page
from ppa_gateway.web import csrf_ok

router = APIRouter(include_in_schema=False)
SEARCH = ("month", "invoice_number", "customer_number", "name")
MAX_SELECTED = 10_000  # checkboxes of one request; "every match" has no such bound


def _jobs(request: Request):
    return request.app.state.host.service("billing").issue_jobs


def _refused(request: Request, session: dict, back: str) -> HTMLResponse:
    return _page(request, "agency/billing/selection_refused.html", {
        "title": "操作できません", "session": session, "csrf": session["csrf"], "message": CSRF_FAILED,
        "back": back}, 403)


async def _selection(request: Request) -> tuple[dict, list[str]]:
    form = await request.form()
    numbers = [str(n) for n in form.getlist("numbers")][:MAX_SELECTED]
    return {k: str(v) for k, v in form.items() if k != "numbers"}, list(dict.fromkeys(numbers))


@router.post("/agency/invoices/selection")
async def invoice_selection(request: Request) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    fields, numbers = await _selection(request)
    search = {k: fields.get(k, "") for k in SEARCH}
    back = "/agency/invoices?" + urlencode(search)
    if not csrf_ok(session, fields.get("csrf_token")):
        return _refused(request, session, back)
    every = fields.get("all_matching") == "1"
    portal = _billing(request)
    try:
        invoices = await portal.selected_invoices(session["principal"], search["month"], None if every else numbers,
                                                  search["invoice_number"], search["customer_number"], search["name"])
    except ValueError:
        return _not_found(request, session)
    if fields.get("action") == "csv" and invoices:
        data, filename = await portal.selected_invoices_csv(session["principal"], invoices, search["month"])
        return _download(data, filename, "text/csv; charset=utf-8")
    # 事業者設定 without the issuer fields the PDF needs: say what is missing before anything is prepared
    billing = request.app.state.host.service("billing")
    missing = missing_for_issue(await billing.settings_store.get(session["principal"])) if invoices else []
    job = await _jobs(request).prepare(session["principal"], invoices) if invoices and not missing else None
    return _page(request, "agency/billing/issue_selection_confirm.html", {
        "title": "請求管理 - 一括発行", "session": session, "csrf": session["csrf"], "job": job, "back": back,
        "missing": missing, "drafts": [i for i in invoices if i.get("status") == "draft"]})


@router.post("/agency/invoices/issue-jobs/{job_id}")
async def issue_job_start(request: Request, job_id: str) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    fields, _ = await _selection(request)
    if not csrf_ok(session, fields.get("csrf_token")):
        return _refused(request, session, "/agency/invoices")
    if not await _jobs(request).start(session["principal"], job_id):
        return _not_found(request, session)
    return RedirectResponse(f"/agency/invoices/issue-jobs/{job_id}", status_code=303)


@router.get("/agency/invoices/issue-jobs/{job_id}", response_class=HTMLResponse)
async def issue_job(request: Request, job_id: str) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    jobs = _jobs(request)
    await jobs.resume_if_stalled(session["principal"], job_id)  # its process stopped part-way: go on from here
    if (job := await jobs.get(session["principal"], job_id)) is None:
        return _not_found(request, session)
    return _page(request, "agency/billing/issue_progress.html", {
        "title": "請求管理 - 一括発行", "session": session, "csrf": session["csrf"], "job": job,
        "refresh": job["status"] == "running"})


@router.post("/agency/customers/selection")
async def customer_selection(request: Request) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    fields, numbers = await _selection(request)
    if not csrf_ok(session, fields.get("csrf_token")):
        return _refused(request, session, "/agency/customers")
    portal = _billing(request)
    customers = await portal.selected_customers(session["principal"], numbers)
    if fields.get("action") == "csv" and customers:
        data, filename = portal.selected_customers_csv(customers)
        return _download(data, filename, "text/csv; charset=utf-8")
    return _page(request, "agency/billing/customers_delete_confirm.html", {
        "title": "顧客管理 - 一括削除", "session": session, "csrf": session["csrf"], "customers": customers})


@router.post("/agency/customers/selection/delete")
async def customer_selection_delete(request: Request) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    fields, numbers = await _selection(request)
    if not csrf_ok(session, fields.get("csrf_token")):
        return _refused(request, session, "/agency/customers")
    await _billing(request).delete_customers(session["principal"], numbers)
    return RedirectResponse("/agency/customers?done=deleted_selected", status_code=303)
