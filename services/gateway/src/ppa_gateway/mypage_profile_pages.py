"""My Page: お客様情報 (view, edit → 確認する → 変更完了) and 製品情報 (register, edit).

The edit form posts to itself with an `action`: adding or removing an agency e-mail row and going
back from the confirmation re-show the form; `confirm` checks everything and shows the values
again (as hidden fields); `commit` checks again and stores. Within a proxy session the e-mail and
the allowed agencies are shown but cannot be changed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from ppa_contracts.owner import DAY_TYPE_LABELS, DayType, OwnerProfile
from ppa_gateway.mypage_pages import (
    CSRF_FAILED,
    FORM_ERRORS,
    anonymous_page,
    ip_of,
    mypage_session,
    no_referrer,
    page,
    to_login,
)
from ppa_gateway.owner_homes import PROOF_LOCKED, ProofRefused, prove, proved_homes
from ppa_gateway.web import csrf_ok, current_session, identity
from ppa_identity.domain.japan import PREFECTURES
from ppa_identity.domain.owner import (
    MAX_AGENCY_EMAILS,
    PRODUCT_FIELDS,
    PROFILE_FIELDS,
    SUBSCRIPTIONS,
    HomeProof,
    InvalidOwnerForm,
    agency_email_errors,
    product_from_form,
    profile_from_form,
)
from ppa_runtime.auth import LoginLocked
from ppa_identity.domain.prices import MAX_SEGMENTS, time_choices
from ppa_identity.owners import EmailChangeLinkRefused, ProductNotFound, RequestsThrottled

router = APIRouter(include_in_schema=False)
FLASHES = {"product_registered": "製品情報を登録しました。", "product_changed": "製品情報を変更しました。",
           "home_detached": "電力データの連携を解除しました。"}
NOT_FOUND = "指定された製品は見つかりません。"
EMAIL_THROTTLED = "短時間に多くのメールアドレス変更のお申込みがありました。15分ほど待ってから再度お試しください。"
EMAIL_REFUSED = {
    "unknown": "このURLは無効です。メールに記載のURLを、途中で切れていないかご確認のうえ、もう一度お試しください。",
    "expired": "このURLは有効期限が切れています。URLは1時間有効です。お手数ですが、お客様情報の変更からやり直してください。",
    "used": "このURLは使用済みか、その後に別の変更が行われたため無効です。",
    "registered": "このメールアドレスは既に別のアカウントで登録されているため、変更できません。",
}
DEFAULT_ROW = {"day_type": DayType.ALL.value, "start": "00:00", "end": "00:00", "price": ""}


def _display_time(value: str) -> str:
    """The seed's way of writing a time: 0:00, 7:30."""
    hours, minutes = value.split(":")
    return f"{int(hours)}:{minutes}"


def _common(session: dict[str, Any]) -> dict[str, Any]:
    return {"session": session, "prefectures": PREFECTURES, "day_types": DAY_TYPE_LABELS,
            "times": [(t, _display_time(t)) for t in time_choices()], "subscriptions": SUBSCRIPTIONS,
            "max_agency_emails": MAX_AGENCY_EMAILS}


def _form_of(profile: OwnerProfile) -> dict[str, Any]:
    """The edit form's values for a stored profile."""
    values: dict[str, Any] = {f: getattr(profile, f) for f in PROFILE_FIELDS}
    values["info_opt_in"] = "yes" if profile.info_opt_in else "no"
    values["agency_emails"] = list(profile.agency_emails) or [""]
    prices = profile.prices
    values["sell_price"] = "" if prices.sell_price is None else str(prices.sell_price)
    rows = [{"day_type": s.day_type.value, "start": s.start, "end": s.end, "price": str(s.price)}
            for s in prices.buy_segments]
    values["rows"] = rows + [dict(DEFAULT_ROW) for _ in range(MAX_SEGMENTS - len(rows))]
    return values


def _values_of(form: FormData) -> dict[str, Any]:
    """The edit form's values as posted (lengths capped; the rules check them properly)."""
    values: dict[str, Any] = {f: str(form.get(f, ""))[:300] for f in (*PROFILE_FIELDS, "info_opt_in", "sell_price")}
    values["agency_emails"] = [str(e)[:300] for e in form.getlist("agency_email")][:MAX_AGENCY_EMAILS + 5]
    values["rows"] = [{"day_type": str(form.get(f"buy_day_{i}", "")), "start": str(form.get(f"buy_start_{i}", "")),
                       "end": str(form.get(f"buy_end_{i}", "")), "price": str(form.get(f"buy_price_{i}", ""))[:30]}
                      for i in range(MAX_SEGMENTS)]
    return values


def _parse(values: dict[str, Any]) -> OwnerProfile:
    return profile_from_form(values, values["agency_emails"], values["sell_price"], values["rows"])


def _edit(request: Request, session: dict, values: dict[str, Any], errors: dict[str, str] | None = None,
          error: str | None = None, status: int = 200) -> Response:
    errors = errors or {}
    return page(request, "mypage/profile_form.html", _common(session) | {
        "title": "お客様情報変更", "values": values, "errors": errors,
        "error": error or (FORM_ERRORS if errors else None),
        "agency_errors": [m for k, m in errors.items() if k.startswith("agency:") or k == "agency_emails"]},
        status)


async def _owner(request: Request, session: dict):
    return await identity(request).owners.load(session["principal"])


# --- お客様情報 --------------------------------------------------------------------------------------


@router.get("/mypage/profile", response_class=HTMLResponse)
async def profile(request: Request, done: str = "") -> Response:
    """お客様情報 and サービス加入状況."""
    if (session := await mypage_session(request)) is None or (owner := await _owner(request, session)) is None:
        return to_login()
    from ppa_gateway.owner_agency_links import FLASHES as AGENCY_FLASHES, agency_states

    messages = [{"kind": "ok", "text": FLASHES[done]}] if done in FLASHES else []
    if done in AGENCY_FLASHES:
        messages.append({"kind": "ok" if done == "asked" else "error", "text": AGENCY_FLASHES[done]})
    proved = await proved_homes(request, owner)
    homes = {h.product_id for h in proved}
    products = {p.product_id for p in owner.products}
    return page(request, "mypage/profile.html", _common(session) | {
        "title": "お客様情報", "owner": owner, "messages": messages, "homes": homes,
        "agencies": await agency_states(request, owner),
        "agency_homes": [h for h in proved if h.product_id not in products]})


@router.get("/mypage/profile/edit", response_class=HTMLResponse)
async def edit_form(request: Request) -> Response:
    if (session := await mypage_session(request)) is None or (owner := await _owner(request, session)) is None:
        return to_login()
    return _edit(request, session, _form_of(owner.profile))


@router.post("/mypage/profile/edit")
async def edit(request: Request) -> Response:
    if (session := await mypage_session(request)) is None or (owner := await _owner(request, session)) is None:
        return to_login()
    form = await request.form()
    values = _values_of(form)
    proxy = bool(session.get("proxy"))
    if proxy:  # the login ID and the allowed agencies are the owner's own decisions
        values["email"] = owner.email
        values["agency_emails"] = list(owner.profile.agency_emails) or [""]
    if not csrf_ok(session, str(form.get("csrf_token", ""))):
        return _edit(request, session, values, error=CSRF_FAILED, status=403)
    action = str(form.get("action", "confirm"))
    if action == "add_agency" and not proxy:
        if len(values["agency_emails"]) < MAX_AGENCY_EMAILS:
            values["agency_emails"].append("")
        return _edit(request, session, values)
    if action.startswith("remove_agency:") and not proxy:
        index = action.removeprefix("remove_agency:")
        if index.isdigit() and int(index) < len(values["agency_emails"]):
            del values["agency_emails"][int(index)]
        values["agency_emails"] = values["agency_emails"] or [""]
        return _edit(request, session, values)
    if action == "back":
        return _edit(request, session, values)
    owners = identity(request).owners
    try:
        new = _parse(values)
        if action == "commit":
            await owners.change_profile(owner.owner_id, new, account_changes=not proxy)
            pending = not proxy and new.email != owner.email
            return RedirectResponse("/mypage/profile/done" + ("?email=sent" if pending else ""), status_code=303)
        new = await owners.preview_profile(owner.owner_id, new, account_changes=not proxy)
    except InvalidOwnerForm as exc:
        errors = dict(exc.errors)
        if not proxy and not any(k.startswith("agency:") for k in errors):
            # the form's own checks failed first: name an unknown agency too, so that one round fixes all
            emails, _ = agency_email_errors(values["agency_emails"])
            errors |= await owners.unknown_agencies(owner.owner_id, emails)
        return _edit(request, session, values, errors, status=422)
    except RequestsThrottled:
        return _edit(request, session, values, error=EMAIL_THROTTLED, status=429)
    except LookupError:
        return to_login()
    return page(request, "mypage/profile_confirm.html", _common(session) | {
        "title": "お客様情報変更 確認", "profile": new, "values": values})


@router.get("/mypage/profile/done", response_class=HTMLResponse)
async def edit_done(request: Request, email: str = "") -> Response:
    if (session := await mypage_session(request)) is None:
        return to_login()
    return page(request, "mypage/profile_done.html", {"title": "変更完了", "session": session,
                                                      "email_sent": email == "sent"})


# --- メールアドレス変更の確認 --------------------------------------------------------------------------


async def _email_refused(request: Request, reason: str) -> Response:
    return no_referrer(await anonymous_page(request, "mypage/email_invalid.html", {
        "title": "メールアドレスの変更", "message": EMAIL_REFUSED.get(reason, EMAIL_REFUSED["unknown"])}, 410))


@router.get("/mypage/email/{token}", response_class=HTMLResponse)
async def email_link(request: Request, token: str) -> Response:
    """The link mailed to the new address: a page with a button (a GET changes nothing)."""
    try:
        change = await identity(request).owners.email_change_link(token)
    except EmailChangeLinkRefused as exc:
        return await _email_refused(request, exc.reason)
    return no_referrer(await anonymous_page(request, "mypage/email_confirm.html",
                                            {"title": "メールアドレスの変更", "token": token, "change": change}))


@router.post("/mypage/email/{token}")
async def email_confirm(request: Request, token: str, csrf_token: str = Form("")) -> Response:
    owners = identity(request).owners
    try:
        change = await owners.email_change_link(token)
    except EmailChangeLinkRefused as exc:
        return await _email_refused(request, exc.reason)
    if not csrf_ok(await current_session(request), csrf_token):
        return no_referrer(await anonymous_page(request, "mypage/email_confirm.html", {
            "title": "メールアドレスの変更", "token": token, "change": change, "error": CSRF_FAILED}, 403))
    try:
        await owners.confirm_email_change(token)
    except EmailChangeLinkRefused as exc:
        return await _email_refused(request, exc.reason)
    return no_referrer(await anonymous_page(request, "mypage/email_done.html", {
        "title": "メールアドレスの変更", "new_email": change.new_email}))


# --- 製品情報 ----------------------------------------------------------------------------------------


def _product_page(request: Request, session: dict, values: dict[str, Any], product_id: str | None = None,
                  errors: dict[str, str] | None = None, error: str | None = None, status: int = 200) -> Response:
    return page(request, "mypage/product_form.html", _common(session) | {
        "title": "製品情報変更" if product_id else "製品情報登録", "values": values, "product_id": product_id,
        "errors": errors or {}, "error": error or (FORM_ERRORS if errors else None),
        "fields": PRODUCT_FIELDS}, status)


def _product_values(form: FormData) -> dict[str, str]:
    return {f: str(form.get(f, ""))[:100] for f in (*PRODUCT_FIELDS, *SUBSCRIPTIONS)}


def _not_found(request: Request, session: dict) -> Response:
    return page(request, "mypage/not_found.html", {"title": "製品情報", "session": session, "message": NOT_FOUND},
                404)


async def _proof(request: Request, session: dict, product_id: str, values: dict[str, str],
                 auth_code: str) -> HomeProof | None:
    """A home proof when an auth code was entered (the rest of the form checked first); InvalidOwnerForm else."""
    if not auth_code.strip():
        return None
    product = product_from_form(product_id, values)
    try:
        return await prove(request, session["principal"], product.system_serial, auth_code, ip_of(request))
    except ProofRefused as exc:
        raise InvalidOwnerForm({"auth_code": str(exc)}) from exc
    except LoginLocked as exc:
        raise InvalidOwnerForm({"auth_code": PROOF_LOCKED}) from exc


@router.get("/mypage/products/new", response_class=HTMLResponse)
async def product_new_form(request: Request) -> Response:
    if (session := await mypage_session(request)) is None:
        return to_login()
    return _product_page(request, session, {f: "no" for f in SUBSCRIPTIONS})


@router.post("/mypage/products/new")
async def product_new(request: Request) -> Response:
    if (session := await mypage_session(request)) is None:
        return to_login()
    form = await request.form()
    values = _product_values(form)
    if not csrf_ok(session, str(form.get("csrf_token", ""))):
        return _product_page(request, session, values, error=CSRF_FAILED, status=403)
    try:
        proof = await _proof(request, session, "new", values, str(form.get("auth_code", ""))[:64])
        await identity(request).owners.register_product(session["principal"], values, proof)
    except InvalidOwnerForm as exc:
        return _product_page(request, session, values, errors=exc.errors, status=422)
    except LookupError:
        return to_login()
    return RedirectResponse("/mypage/profile?done=product_registered", status_code=303)


@router.get("/mypage/products/{product_id}/edit", response_class=HTMLResponse)
async def product_edit_form(request: Request, product_id: str) -> Response:
    if (session := await mypage_session(request)) is None or (owner := await _owner(request, session)) is None:
        return to_login()
    if (product := owner.product(product_id)) is None:
        return _not_found(request, session)
    values = product.model_dump(exclude={"product_id"})
    values |= {f: "yes" if values[f] else "no" for f in SUBSCRIPTIONS}
    return _product_page(request, session, values, product_id)


@router.post("/mypage/products/{product_id}/edit")
async def product_edit(request: Request, product_id: str) -> Response:
    if (session := await mypage_session(request)) is None:
        return to_login()
    form = await request.form()
    values = _product_values(form)
    if not csrf_ok(session, str(form.get("csrf_token", ""))):
        return _product_page(request, session, values, product_id, error=CSRF_FAILED, status=403)
    try:
        proof = await _proof(request, session, product_id, values, str(form.get("auth_code", ""))[:64])
        await identity(request).owners.change_product(session["principal"], product_id, values, proof)
    except InvalidOwnerForm as exc:
        return _product_page(request, session, values, product_id, exc.errors, status=422)
    except ProductNotFound:
        return _not_found(request, session)
    return RedirectResponse("/mypage/profile?done=product_changed", status_code=303)


@router.post("/mypage/products/{product_id}/detach")
async def home_detach(request: Request, product_id: str, csrf_token: str = Form("")) -> Response:
    if (session := await mypage_session(request)) is None:
        return to_login()
    if not csrf_ok(session, csrf_token):
        return page(request, "mypage/not_found.html", {"title": "製品情報", "session": session,
                                                       "message": CSRF_FAILED}, 403)
    try:
        await identity(request).owners.detach_home(session["principal"], product_id)
    except ProductNotFound:
        return _not_found(request, session)
    return RedirectResponse("/mypage/profile?done=home_detached", status_code=303)
