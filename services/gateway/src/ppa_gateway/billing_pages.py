"""Agency portal pages of the PPA fee reference system (seed 004): 請求管理 一覧/詳細, 顧客管理
一覧/新規登録/編集/請求一覧/請求詳細 and 事業者設定. Every page is scoped to the session's agency;
every form carries the session's CSRF token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from ppa_gateway.billing_chart import daily_chart
from ppa_gateway.web import csrf_ok, current_session, render

router = APIRouter(include_in_schema=False)
CSRF_FAILED = "画面の有効期限が切れました。もう一度操作してください。"
NOT_FOUND = "指定されたページは見つかりません。"
STATUS = {"draft": "未発行", "issued": "発行済", "voided": "取消"}
ROUNDING = {"half_up": "四捨五入", "down": "切り捨て", "half_even": "銀行丸め（偶数丸め）"}
DONE = {"issued": "請求書を発行し、お客様にメールで送信しました。",
        "issued_nomail": "請求書を発行しました（メールアドレス未登録のため送信していません）。",
        "voided": "請求を取り消しました。", "registered": "顧客を登録しました。", "saved": "顧客情報を更新しました。",
        "deleted": "顧客を削除しました。", "deleted_selected": "選択した顧客を削除しました。", "reissued": "認証コードを再発行しました。",
        "settings": "事業者設定を保存しました。",
        "owner_linked": "オーナー様のマイページに電力データを連携し、メールでお知らせしました。"}
CUSTOMER_FIELDS = ("serial_number", "name", "name_kana", "contract_start", "contract_end", "base_fee",
                   "sell_unit_price", "usage_unit_price", "notes", "email")


def yen(value: Any) -> str:
    """Whole yen with thousands separators."""
    try:
        return f"{Decimal(value):,.0f}"
    except (InvalidOperation, TypeError):
        return ""


def kwh(value: Any) -> str:
    """Two decimals with thousands separators (kWh, unit prices, daily fees)."""
    try:
        return f"{Decimal(value):,.2f}"
    except (InvalidOperation, TypeError):
        return ""


def ymd(value: Any) -> str:
    """An ISO date or timestamp as YYYY/MM/DD (timestamps in JST with the time)."""
    if not value:
        return ""
    text = str(value)
    if len(text) == 10:
        return text.replace("-", "/")
    from datetime import datetime, timedelta, timezone

    moment = datetime.fromisoformat(text).astimezone(timezone(timedelta(hours=9)))
    return f"{moment:%Y/%m/%d %H:%M}"


def period(start: Any, end: Any) -> str:
    """A contract period as the seed shows it, or blank when there is none."""
    return f"{ymd(start)} ~ {ymd(end)}" if start or end else ""


def _page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    env = request.app.state.templates.env
    for name, fn in (("yen", yen), ("kwh", kwh), ("ymd", ymd)):
        env.filters.setdefault(name, fn)
    env.globals.setdefault("period", period)
    messages = list(context.pop("messages", []))
    done = request.query_params.get("done")
    if done in DONE:
        messages.append({"kind": "ok", "text": DONE[done]})
    return render(request, template, {"messages": messages, "status_labels": STATUS, **context}, status)


async def _agency(request: Request) -> dict | None:
    session = await current_session(request)
    return session if session is not None and session["kind"] == "agency" else None


def _billing(request: Request):
    return request.app.state.host.service("billing").portal


def _login() -> RedirectResponse:
    return RedirectResponse("/agency/login", status_code=303)


def _not_found(request: Request, session: dict) -> HTMLResponse:
    return _page(request, "agency/billing/not_found.html", {"title": "見つかりません", "session": session,
                                                             "csrf": session["csrf"], "message": NOT_FOUND}, 404)


def _download(data: bytes | AsyncIterator[bytes], filename: str, media_type: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if isinstance(data, bytes):
        return Response(data, media_type=media_type, headers=headers)
    return StreamingResponse(data, media_type=media_type, headers=headers)  # sent as it is read


def _encoding(text: str) -> str | None:
    """The CSV encoding a download link asks for: UTF-8 (with BOM) by default, Shift_JIS for Excel; None else."""
    return {"": "utf-8", "utf-8": "utf-8", "shift_jis": "shift_jis"}.get(text.strip().lower())


def _csv(data: bytes | AsyncIterator[bytes], filename: str, encoding: str) -> Response:
    return _download(data, filename, f"text/csv; charset={encoding}")


def _page_number(text: str | None) -> int:
    return int(text) if text and text.isdigit() and 0 < int(text) <= 100_000 else 1


# 請求管理 ──────────────────────────────────────────────────────────────────────────────────────


@router.get("/agency/invoices.csv")
async def invoices_csv(request: Request, month: str = "", invoice_number: str = "", customer_number: str = "",
                       name: str = "", encoding: str = "") -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    if (charset := _encoding(encoding)) is None:
        return _not_found(request, session)
    try:
        data, filename = await _billing(request).invoice_list_csv(session["principal"], month, invoice_number,
                                                                  customer_number, name, charset)
    except ValueError:
        return _not_found(request, session)
    return _csv(data, filename, charset)


@router.get("/agency/invoices", response_class=HTMLResponse)
async def invoices(request: Request, month: str = "", invoice_number: str = "", customer_number: str = "",
                   name: str = "", page: str = "1") -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    portal = _billing(request)
    month = month.strip() or await portal.default_month(session["principal"])
    search = {"month": month, "invoice_number": invoice_number, "customer_number": customer_number, "name": name}
    context = {"title": "請求管理 - 一覧", "session": session, "csrf": session["csrf"], "search": search,
               "query": urlencode(search), "result": None, "errors": {}}
    try:
        context["result"] = await portal.invoice_list(session["principal"], month, invoice_number, customer_number,
                                                      name, _page_number(page))
        search["month"] = context["result"]["month"]  # as typed (2024-01, full width) → 2024/01
        context["query"] = urlencode(search)
    except ValueError as exc:
        context["errors"] = getattr(exc, "errors", {"": str(exc)})
        return _page(request, "agency/billing/invoices.html", context, 422)
    return _page(request, "agency/billing/invoices.html", context)


async def _invoice_page(request: Request, session: dict, number: str, customer_number: str | None = None,
                        errors: dict | None = None, status: int = 200) -> Response:
    try:
        inv = await _billing(request).invoice(session["principal"], number)
    except LookupError:
        return _not_found(request, session)
    if customer_number is not None and inv["customer_number"] != customer_number:
        return _not_found(request, session)
    base = f"/agency/customers/{customer_number}/invoices" if customer_number else "/agency/invoices"
    title = f"{'顧客管理 - 請求詳細' if customer_number else '請求管理 - 詳細'} ({number})"
    check = await _billing(request).issue_check(session["principal"], number) if inv["status"] != "issued" else None
    self_url = f"{base}/{number}"
    return _page(request, "agency/billing/invoice.html", {
        "title": title, "session": session, "csrf": session["csrf"], "inv": inv, "chart": daily_chart(inv["daily"]),
        "customer_view": customer_number, "self_url": self_url, "errors": errors or {}, "check": check,
        "issue_url": f"/agency/invoices/{number}/issue?{urlencode({'back': self_url})}"}, status)


@router.get("/agency/invoices/{number}.csv")
async def invoice_csv(request: Request, number: str, encoding: str = "") -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    if (charset := _encoding(encoding)) is None:
        return _not_found(request, session)
    try:
        data, filename = await _billing(request).invoice_csv(session["principal"], number, charset)
    except LookupError:
        return _not_found(request, session)
    return _csv(data, filename, charset)


@router.get("/agency/invoices/{number}.pdf")
async def invoice_pdf(request: Request, number: str, revision: str = "") -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    try:
        data, filename = await _billing(request).invoice_pdf(session["principal"], number,
                                                            int(revision) if revision.isdigit() else None)
    except LookupError:
        return _not_found(request, session)
    return _download(data, filename, "application/pdf")


@router.get("/agency/invoices/{number}", response_class=HTMLResponse)
async def invoice(request: Request, number: str) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    return await _invoice_page(request, session, number)


async def _invoice_action(request: Request, number: str, token: str, action: str, back: str) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    customer = back.split("/")[3] if back.startswith("/agency/customers/") else None
    if not csrf_ok(session, token):
        return await _invoice_page(request, session, number, customer, {"": CSRF_FAILED}, 403)
    portal = _billing(request)
    try:
        inv = await (portal.issue(session["principal"], number) if action == "issue"
                     else portal.void(session["principal"], number))
    except LookupError:
        return _not_found(request, session)
    except ValueError as exc:
        if action == "issue":  # the confirmation page says why, live (never an error page at the POST URL)
            return RedirectResponse(_confirm_url(number, back), status_code=303)
        return await _invoice_page(request, session, number, customer, getattr(exc, "errors", {"": str(exc)}), 409)
    done = "voided" if action == "void" else ("issued" if inv.get("emailed_to") else "issued_nomail")
    return RedirectResponse(f"{back}?done={done}", status_code=303)


def _confirm_url(number: str, back: str) -> str:
    return f"/agency/invoices/{number}/issue?{urlencode({'back': back})}"


@router.get("/agency/invoices/{number}/issue", response_class=HTMLResponse)
async def issue_confirmation(request: Request, number: str, back: str = "") -> Response:
    """請求書発行 の確認: what will be frozen and mailed to whom, or what stops it and where to fix it."""
    if (session := await _agency(request)) is None:
        return _login()
    back = _back(number, back)
    portal = _billing(request)
    try:
        inv = await portal.invoice(session["principal"], number)
        check = await portal.issue_check(session["principal"], number)
    except LookupError:
        return _not_found(request, session)
    if inv["status"] == "issued":  # nothing to confirm: the detail page shows the issued revision
        return RedirectResponse(back, status_code=303)
    return _page(request, "agency/billing/issue_confirm.html", {
        "title": f"請求書発行の確認 ({number})", "session": session, "csrf": session["csrf"], "inv": inv,
        "check": check, "back": back, "customer_view": back.startswith("/agency/customers/")})


def _back(number: str, back: str) -> str:
    """Only the two detail pages of this invoice are valid places to return to."""
    if back.startswith("/agency/customers/") and back.endswith(f"/invoices/{number}") and back.count("/") == 5:
        return back
    return f"/agency/invoices/{number}"


@router.post("/agency/invoices/{number}/issue")
async def issue(request: Request, number: str, csrf_token: str = Form(""), back: str = Form(""),
                confirmed: str = Form("")) -> Response:
    if confirmed != "yes":  # only the confirmation page's own button issues (a mail goes out)
        if await _agency(request) is None:
            return _login()
        return RedirectResponse(_confirm_url(number, _back(number, back)), status_code=303)
    return await _invoice_action(request, number, csrf_token, "issue", _back(number, back))


@router.post("/agency/invoices/{number}/void")
async def void(request: Request, number: str, csrf_token: str = Form(""), back: str = Form("")) -> Response:
    return await _invoice_action(request, number, csrf_token, "void", _back(number, back))


# 顧客管理 ──────────────────────────────────────────────────────────────────────────────────────


@router.get("/agency/customers.csv")
async def customers_csv(request: Request, customer_number: str = "", name: str = "", email: str = "",
                        encoding: str = "") -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    if (charset := _encoding(encoding)) is None:
        return _not_found(request, session)
    data, filename = await _billing(request).customer_csv(session["principal"], customer_number, name, email, charset)
    return _csv(data, filename, charset)


@router.get("/agency/customers", response_class=HTMLResponse)
async def customers(request: Request, customer_number: str = "", name: str = "", email: str = "",
                    page: str = "1") -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    search = {"customer_number": customer_number, "name": name, "email": email}
    result = await _billing(request).customer_list(session["principal"], customer_number, name, email,
                                                   _page_number(page))
    return _page(request, "agency/billing/customers.html", {
        "title": "顧客管理 - 一覧", "session": session, "csrf": session["csrf"], "search": search,
        "query": urlencode(search), "result": result})


def _customer_form(request: Request, session: dict, values: dict, errors: dict, customer: dict | None,
                   status: int = 200) -> HTMLResponse:
    title = "顧客管理 - 編集" if customer else "顧客管理 - 新規登録"
    return _page(request, "agency/billing/customer_form.html", {
        "title": title, "session": session, "csrf": session["csrf"], "values": values, "errors": errors,
        "customer": customer}, status)


def _values_of(customer: dict) -> dict[str, str]:
    values = {k: "" if customer.get(k) is None else str(customer.get(k)) for k in CUSTOMER_FIELDS}
    values["customer_suffix"] = customer["customer_number"][2:]
    return values


@router.get("/agency/customers/new", response_class=HTMLResponse)
async def new_customer_form(request: Request) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    return _customer_form(request, session, {}, {}, None)


async def _form_values(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(form.get(k, "")) for k in (*CUSTOMER_FIELDS, "customer_suffix", "csrf_token")}


@router.post("/agency/customers/new")
async def register_customer(request: Request) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    values = await _form_values(request)
    if not csrf_ok(session, values.pop("csrf_token")):
        return _customer_form(request, session, values, {"": CSRF_FAILED}, None, 403)
    data: dict[str, Any] = {k: values[k] for k in CUSTOMER_FIELDS}
    data["customer_number"] = "11" + values["customer_suffix"].strip()
    try:
        customer = await _billing(request).register_customer(session["principal"], data)
    except ValueError as exc:
        errors = dict(getattr(exc, "errors", {"": str(exc)}))
        return _customer_form(request, session, values, errors, None, 422)
    return RedirectResponse(f"/agency/customers/{customer['customer_number']}?done=registered", status_code=303)


@router.get("/agency/customers/{number}", response_class=HTMLResponse)
async def edit_customer_form(request: Request, number: str) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    try:
        customer = await _billing(request).customer(session["principal"], number)
    except LookupError:
        return _not_found(request, session)
    return _customer_form(request, session, _values_of(customer), {}, customer)


@router.post("/agency/customers/{number}")
async def change_customer(request: Request, number: str) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    portal = _billing(request)
    try:
        customer = await portal.customer(session["principal"], number)
    except LookupError:
        return _not_found(request, session)
    values = await _form_values(request)
    values["customer_suffix"] = number[2:]
    if not csrf_ok(session, values.pop("csrf_token")):
        return _customer_form(request, session, values, {"": CSRF_FAILED}, customer, 403)
    try:
        await portal.change_customer(session["principal"], number, {k: values[k] for k in CUSTOMER_FIELDS})
    except ValueError as exc:
        return _customer_form(request, session, values, dict(getattr(exc, "errors", {"": str(exc)})), customer, 422)
    return RedirectResponse(f"/agency/customers/{number}?done=saved", status_code=303)


@router.post("/agency/customers/{number}/delete")
async def delete_customer(request: Request, number: str, csrf_token: str = Form("")) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    portal = _billing(request)
    try:
        customer = await portal.customer(session["principal"], number)
    except LookupError:
        return _not_found(request, session)
    if not csrf_ok(session, csrf_token):
        return _customer_form(request, session, _values_of(customer), {"": CSRF_FAILED}, customer, 403)
    await portal.delete_customer(session["principal"], number)
    return RedirectResponse("/agency/customers?done=deleted", status_code=303)


@router.post("/agency/customers/{number}/auth-code")
async def reissue_auth_code(request: Request, number: str, csrf_token: str = Form("")) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    portal = _billing(request)
    try:
        customer = await portal.customer(session["principal"], number)
    except LookupError:
        return _not_found(request, session)
    if not csrf_ok(session, csrf_token):
        return _customer_form(request, session, _values_of(customer), {"": CSRF_FAILED}, customer, 403)
    await portal.reissue_auth_code(session["principal"], number)
    return RedirectResponse(f"/agency/customers/{number}?done=reissued", status_code=303)


@router.get("/agency/customers/{number}/invoices.csv")
async def customer_invoices_csv(request: Request, number: str, invoice_number: str = "", month: str = "",
                                encoding: str = "") -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    if (charset := _encoding(encoding)) is None:
        return _not_found(request, session)
    try:
        data, filename = await _billing(request).customer_invoices_csv(session["principal"], number, month,
                                                                       invoice_number, charset)
    except (LookupError, ValueError):
        return _not_found(request, session)
    return _csv(data, filename, charset)


@router.get("/agency/customers/{number}/invoices", response_class=HTMLResponse)
async def customer_invoices(request: Request, number: str, invoice_number: str = "", month: str = "",
                            page: str = "1") -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    portal = _billing(request)
    search = {"invoice_number": invoice_number, "month": month}
    context = {"title": f"顧客管理 - 請求一覧 ({number})", "session": session, "csrf": session["csrf"],
               "number": number, "search": search, "query": urlencode(search), "errors": {},
               "result": {"items": [], "total": 0, "page": 1, "pages": 1}}
    try:
        context["customer"] = await portal.customer(session["principal"], number)
        context["result"] = await portal.customer_invoice_page(session["principal"], number, month, invoice_number,
                                                               _page_number(page))
    except LookupError:
        return _not_found(request, session)
    except ValueError as exc:
        context["errors"] = getattr(exc, "errors", {"": str(exc)})
        return _page(request, "agency/billing/customer_invoices.html", context, 422)
    return _page(request, "agency/billing/customer_invoices.html", context)


@router.get("/agency/customers/{number}/invoices/{invoice_number}", response_class=HTMLResponse)
async def customer_invoice(request: Request, number: str, invoice_number: str) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    return await _invoice_page(request, session, invoice_number, customer_number=number)


# 事業者設定 ────────────────────────────────────────────────────────────────────────────────────


def _settings_page(request: Request, session: dict, values: dict, errors: dict, status: int = 200) -> HTMLResponse:
    return _page(request, "agency/billing/settings.html", {
        "title": "事業者設定", "session": session, "csrf": session["csrf"], "values": values, "errors": errors,
        "closing_days": [str(d) for d in range(1, 29)], "roundings": ROUNDING, "today": date.today()}, status)


@router.get("/agency/settings/billing", response_class=HTMLResponse)
async def settings_form(request: Request) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    values = await _billing(request).get_settings(session["principal"])
    values = {k: "" if v is None else str(v) for k, v in values.items()}
    return _settings_page(request, session, values, {})


@router.post("/agency/settings/billing")
async def save_settings(request: Request, closing_day: str = Form(""), rounding: str = Form(""),
                        issuer_name: str = Form(""), issuer_address: str = Form(""),
                        registration_number: str = Form(""), csrf_token: str = Form("")) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    values = {"closing_day": closing_day, "rounding": rounding, "issuer_name": issuer_name,
              "issuer_address": issuer_address, "registration_number": registration_number}
    if not csrf_ok(session, csrf_token):
        return _settings_page(request, session, values, {"": CSRF_FAILED}, 403)
    try:
        await _billing(request).save_settings(session["principal"], values)
    except ValueError as exc:
        return _settings_page(request, session, values, dict(getattr(exc, "errors", {"": str(exc)})), 422)
    return RedirectResponse("/agency/settings/billing?done=settings", status_code=303)
