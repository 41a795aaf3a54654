"""顧客管理 → CSV一括登録: upload a file, see every row's result before anything is written, import it, and follow
its progress. Every page is scoped to the session's agency; every form carries the session's CSRF token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from ppa_billing.domain.customer_import import HEADER, ImportFileError, row_view, summary
from ppa_gateway.billing_pages import CSRF_FAILED, _agency, _login, _not_found, _page
from ppa_gateway.web import csrf_ok

router = APIRouter(include_in_schema=False)
TITLE = "顧客管理 - CSV一括登録"
NO_FILE = "取り込むCSVファイルを選択してください。"
SHOWN_ROWS = 10_000  # rows of the preview's table (every error row is listed above it in any case)


def _jobs(request: Request):
    return request.app.state.host.service("billing").import_jobs


def _form(request: Request, session: dict, errors: dict, status: int = 200) -> HTMLResponse:
    return _page(request, "agency/billing/customer_import.html", {
        "title": TITLE, "session": session, "csrf": session["csrf"], "errors": errors, "header": ",".join(HEADER)},
        status)


@router.get("/agency/customers/import", response_class=HTMLResponse)
async def import_form(request: Request) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    return _form(request, session, {})


@router.post("/agency/customers/import", response_class=HTMLResponse)
async def import_preview(request: Request) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    form = await request.form()
    if not csrf_ok(session, str(form.get("csrf_token", ""))):
        return _form(request, session, {"": CSRF_FAILED}, 403)
    upload = form.get("file")
    data = await upload.read() if isinstance(upload, UploadFile) else b""
    if not data:
        return _form(request, session, {"file": NO_FILE}, 422)
    try:
        job_id, rows = await _jobs(request).preview(session["principal"], data, upload.filename or "")
    except ImportFileError as exc:
        return _form(request, session, {"file": str(exc)}, 422)
    return _page(request, "agency/billing/customer_import_preview.html", {
        "title": TITLE, "session": session, "csrf": session["csrf"], "job_id": job_id,
        "filename": upload.filename or "", "counts": summary(rows), "rows": [row_view(r) for r in rows],
        "shown": SHOWN_ROWS})


@router.post("/agency/customers/import/{job_id}")
async def import_start(request: Request, job_id: str) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    form = await request.form()
    jobs = _jobs(request)
    if await jobs.get(session["principal"], job_id) is None:
        return _not_found(request, session)
    if not csrf_ok(session, str(form.get("csrf_token", ""))):
        return _form(request, session, {"": CSRF_FAILED}, 403)
    await jobs.start(session["principal"], job_id)  # a second start (double click) only shows the progress
    return RedirectResponse(f"/agency/customers/import/{job_id}", status_code=303)


@router.get("/agency/customers/import/{job_id}", response_class=HTMLResponse)
async def import_progress(request: Request, job_id: str) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    if (job := await _jobs(request).get(session["principal"], job_id)) is None:
        return _not_found(request, session)
    percent = int(100 * job["done"] / job["total"]) if job["total"] else 100
    return _page(request, "agency/billing/customer_import_progress.html", {
        "title": TITLE, "session": session, "csrf": session["csrf"], "job": job, "percent": percent,
        "refresh": job["status"] == "running"})
