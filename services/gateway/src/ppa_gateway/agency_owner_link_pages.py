"""顧客管理 → オーナー連携: an agency attaches one of its PPA customers (the home) to an owner it has an approved
link with, by the owner's user ID (#, as 登録ユーザー一覧 shows it); identity records the attachment and mails
the owner, who can detach it on My Page.

The customer is looked up within the session's agency, the link among the agency's own and must be approved
now; the proof recorded is the device registry's current auth code hash of that customer, so a re-issued code,
a deleted customer or a detach end the owner's view exactly as for a home the owner proved itself.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ppa_gateway.billing_pages import _agency, _billing, _customer_form, _login, _not_found, _values_of
from ppa_gateway.web import csrf_ok, identity
from ppa_identity.domain.owner import HomeProof
from ppa_identity.owners import HomeAlreadyAttached
from ppa_linking.domain.links import LinkNotFound, LinkStatus

router = APIRouter(include_in_schema=False)
CSRF_FAILED = "画面の有効期限が切れました。もう一度操作してください。"
NOT_LINKED = "連携を許可したユーザーのID（#の番号）を入力してください。"
NO_DEVICE = "機器の登録が完了していません。しばらくしてから再度お試しください。"
ALREADY = "このお客様の電力データは、このユーザーに連携済みです。"


@router.post("/agency/customers/{number}/owner-link")
async def link_owner(request: Request, number: str, link_id: str = Form(""), csrf_token: str = Form("")) -> Response:
    if (session := await _agency(request)) is None:
        return _login()
    agency_id = session["principal"]
    try:
        customer = await _billing(request).customer(agency_id, number)
    except LookupError:
        return _not_found(request, session)

    def refused(message: str, status: int = 422) -> Response:
        return _customer_form(request, session, _values_of(customer), {"owner_link": message}, customer, status)

    if not csrf_ok(session, csrf_token):
        return refused(CSRF_FAILED, 403)
    links = request.app.state.host.service("linking").links
    try:
        pair, link = await links.find(agency_id, link_id.strip().lstrip("#"))
    except LinkNotFound:
        return refused(NOT_LINKED)
    if link.status != LinkStatus.APPROVED or pair.current is None or pair.current.link_id != link.link_id:
        return refused(NOT_LINKED)
    device = await request.app.state.host.service("metering").devices.coll.get(f"{agency_id}:{number}")
    if not device or not device.get("auth_code_hash") or device.get("serial_number") != customer["serial_number"]:
        return refused(NO_DEVICE, 409)
    agency = await identity(request).load_agency(link.agency_email)
    proof = HomeProof(serial_number=device["serial_number"], agency_id=agency_id, customer_number=number,
                      auth_code_hash=device["auth_code_hash"])
    try:
        await identity(request).owners.attach_home_by_agency(link.owner_id, proof, link.agency_email,
                                                             agency.profile.company if agency else "")
    except HomeAlreadyAttached:
        return refused(ALREADY, 409)
    return RedirectResponse(f"/agency/customers/{number}?done=owner_linked", status_code=303)
