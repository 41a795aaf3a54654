"""Billing's JSON API: PPA customers (register, list/search, read, edit, delete, re-issue auth code)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from ppa_billing.exports import CUSTOMER_HEADER, customer_rows
from ppa_billing.invoice_api import csv_response
from ppa_billing.customer_import import CustomerImport
from ppa_billing.customers import CustomerConflict, CustomerNotFound, Customers, InvalidCustomer
from ppa_billing.domain.customer_import import ImportFileError, row_view, summary
from ppa_runtime.auth import CurrentAgency
from ppa_runtime.eventstore import ConcurrencyConflict
from ppa_runtime.http import Problem

Amount = str | int


class CustomerBase(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no bool → int, no unknown fields

    serial_number: str
    name: str
    name_kana: str = ""
    contract_start: str | None = None
    contract_end: str | None = None
    base_fee: Amount
    sell_unit_price: Amount
    usage_unit_price: Amount
    notes: str = ""
    email: str | None = None


class CustomerCreate(CustomerBase):
    customer_number: str


class CustomerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no bool → int, no unknown fields

    serial_number: str | None = None
    name: str | None = None
    name_kana: str | None = None
    contract_start: str | None = None
    contract_end: str | None = None
    base_fee: Amount | None = None
    sell_unit_price: Amount | None = None
    usage_unit_price: Amount | None = None
    notes: str | None = None
    email: str | None = None


class CustomerPublic(BaseModel):
    customer_number: str
    serial_number: str
    name: str
    name_kana: str
    contract_start: str | None
    contract_end: str | None
    base_fee: str
    sell_unit_price: str
    usage_unit_price: str
    notes: str
    email: str | None
    auth_code: str | None
    registered_at: str
    updated_at: str


class ImportRowResult(BaseModel):
    line: int
    customer_number: str
    name: str
    status: str
    status_label: str
    errors: list[str]


class ImportResult(BaseModel):
    dry_run: bool
    counts: dict[str, int]
    rows: list[ImportRowResult]


class CustomerList(BaseModel):
    items: list[CustomerPublic]
    total: int


def _public(doc: dict[str, Any]) -> CustomerPublic:
    return CustomerPublic.model_validate({k: doc.get(k) for k in CustomerPublic.model_fields})


def _invalid(exc: InvalidCustomer | CustomerConflict, status: int) -> Problem:
    errors = [{"field": f, "message": m} for f, m in exc.errors.items()]
    title = "Unprocessable Content" if status == 422 else "Conflict"
    return Problem(status, title, "、".join(exc.errors.values()), errors)


UPDATED_MEANWHILE = "この顧客は同時に他の操作で更新されました。最新の内容を確認してから、もう一度お試しください。"


def router(customers: Customers, importer: CustomerImport) -> APIRouter:
    """Routes bound to the billing service's customers."""
    r = APIRouter(prefix="/api/v1/customers", tags=["customers"])
    not_found = "指定された顧客は見つかりません。"

    @r.post("", status_code=201, response_model=CustomerPublic, summary="Register a PPA customer")
    async def create(body: CustomerCreate, agency: CurrentAgency) -> CustomerPublic:
        try:
            return _public(await customers.register(agency.agency_id, body.model_dump()))
        except InvalidCustomer as exc:
            raise _invalid(exc, 422) from exc
        except CustomerConflict as exc:
            raise _invalid(exc, 409) from exc

    @r.post("/import", response_model=ImportResult, summary="Import customers from a CSV of the customer list's "
            "columns (UTF-8 with or without BOM, or Shift_JIS); `dry_run=true` only says what each row would do",
            openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {
                "type": "string", "format": "binary"}}}}})
    async def import_csv(request: Request, agency: CurrentAgency, dry_run: bool = False) -> ImportResult:
        data = await request.body()  # its size is bounded by the body limit (ppa_runtime.limits)
        try:
            run = importer.preview if dry_run else importer.run
            rows = await run(agency.agency_id, data)
        except ImportFileError as exc:
            raise Problem(422, "Unprocessable Content", str(exc)) from exc
        return ImportResult(dry_run=dry_run, counts=summary(rows),
                            rows=[ImportRowResult(**row_view(row)) for row in rows])

    @r.get("", response_model=CustomerList, summary="List and search customers")
    async def search(agency: CurrentAgency, q: str = "", page: int = Query(1, ge=1, le=100_000)) -> CustomerList:
        docs, total = await customers.search(agency.agency_id, q, page)
        return CustomerList(items=[_public({**d, "auth_code": None}) for d in docs], total=total)

    @r.get(".csv", summary="CSV of the customer list (same search as the list)")
    async def list_csv(agency: CurrentAgency, q: str = "", encoding: str = "utf-8") -> Response:
        return csv_response(CUSTOMER_HEADER, (customer_rows(docs) async for docs in customers.chunks(
            agency.agency_id, q)), "customers.csv", encoding)

    @r.get("/{customer_number}", response_model=CustomerPublic, summary="Read a customer")
    async def read(customer_number: str, agency: CurrentAgency) -> CustomerPublic:
        try:
            return _public(await customers.get(agency.agency_id, customer_number))
        except CustomerNotFound as exc:
            raise Problem(404, "Not Found", not_found) from exc

    @r.patch("/{customer_number}", response_model=CustomerPublic, summary="Edit a customer")
    async def edit(customer_number: str, body: CustomerUpdate, agency: CurrentAgency) -> CustomerPublic:
        try:
            return _public(await customers.change(agency.agency_id, customer_number,
                                                  body.model_dump(exclude_unset=True)))
        except CustomerNotFound as exc:
            raise Problem(404, "Not Found", not_found) from exc
        except InvalidCustomer as exc:
            raise _invalid(exc, 422) from exc
        except CustomerConflict as exc:
            raise _invalid(exc, 409) from exc
        except ConcurrencyConflict as exc:
            raise Problem(409, "Conflict", UPDATED_MEANWHILE) from exc

    @r.delete("/{customer_number}", status_code=204, summary="Delete a customer (issued invoices stay)")
    async def delete(customer_number: str, agency: CurrentAgency) -> Response:
        try:
            await customers.delete(agency.agency_id, customer_number)
        except CustomerNotFound as exc:
            raise Problem(404, "Not Found", not_found) from exc
        except ConcurrencyConflict as exc:
            raise Problem(409, "Conflict", UPDATED_MEANWHILE) from exc
        return Response(status_code=204)

    @r.post("/{customer_number}/auth-code", response_model=CustomerPublic, summary="Re-issue the auth code")
    async def reissue(customer_number: str, agency: CurrentAgency) -> CustomerPublic:
        try:
            return _public(await customers.reissue(agency.agency_id, customer_number))
        except CustomerNotFound as exc:
            raise Problem(404, "Not Found", not_found) from exc
        except ConcurrencyConflict as exc:
            raise Problem(409, "Conflict", UPDATED_MEANWHILE) from exc

    return r
