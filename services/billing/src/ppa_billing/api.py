"""Billing's JSON API: PPA customers (register, list/search, read, edit, delete, re-issue auth code)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ppa_billing.exports import CUSTOMER_HEADER, customer_rows
from ppa_billing.invoice_api import csv_response
from ppa_billing.customer_import import CustomerImport
from ppa_billing.customers import CustomerConflict, CustomerNotFound, Customers, InvalidCustomer
from ppa_billing.domain.customer_import import ImportFileError, row_view, summary
from ppa_contracts.text import sentences
from ppa_runtime.auth import CurrentAgency
from ppa_runtime.eventstore import ConcurrencyConflict
from ppa_runtime.http import Problem
from ppa_runtime.openapi import problems
from ppa_billing import contract_docs as doc

Amount = Annotated[str | int, doc.Whole]
CustomerNumber = Annotated[str, Path(json_schema_extra=doc.exactly(doc.CUSTOMER_NUMBER))]


class CustomerBase(BaseModel):
    # no bool → int, no unknown fields; the rules themselves are the domain's (Japanese messages, every bad field
    # at once), which the documented schemas (contract_docs) describe for clients and schemathesis
    model_config = ConfigDict(extra="forbid", strict=True)

    serial_number: str = Field(json_schema_extra=doc.exactly(doc.SERIAL))
    name: str = Field(json_schema_extra=doc.exactly(doc.NAME))
    name_kana: str = Field("", json_schema_extra=doc.exactly(doc.KANA))
    contract_start: str | None = Field(None, json_schema_extra=doc.exactly(doc.DATE))
    contract_end: str | None = Field(None, json_schema_extra=doc.exactly(doc.DATE))
    base_fee: Amount = Field(json_schema_extra=doc.exactly(doc.PRICE))
    sell_unit_price: Amount = Field(json_schema_extra=doc.exactly(doc.PRICE))
    usage_unit_price: Amount = Field(json_schema_extra=doc.exactly(doc.PRICE))
    notes: str = Field("", json_schema_extra=doc.exactly(doc.NOTES))
    email: str | None = Field(None, json_schema_extra=doc.exactly(doc.nullable(doc.EMAIL)))


class CustomerCreate(CustomerBase):
    customer_number: str = Field(json_schema_extra=doc.exactly(doc.CUSTOMER_NUMBER))


class CustomerUpdate(BaseModel):
    # every field optional; null clears what may be empty (dates, e-mail, kana, notes) and is refused elsewhere
    model_config = ConfigDict(extra="forbid", strict=True)

    serial_number: str | None = Field(None, json_schema_extra=doc.exactly(doc.SERIAL))
    name: str | None = Field(None, json_schema_extra=doc.exactly(doc.NAME))
    name_kana: str | None = Field(None, json_schema_extra=doc.exactly(doc.nullable(doc.KANA)))
    contract_start: str | None = Field(None, json_schema_extra=doc.exactly(doc.DATE))
    contract_end: str | None = Field(None, json_schema_extra=doc.exactly(doc.DATE))
    base_fee: Amount | None = Field(None, json_schema_extra=doc.exactly(doc.PRICE))
    sell_unit_price: Amount | None = Field(None, json_schema_extra=doc.exactly(doc.PRICE))
    usage_unit_price: Amount | None = Field(None, json_schema_extra=doc.exactly(doc.PRICE))
    notes: str | None = Field(None, json_schema_extra=doc.exactly(doc.nullable(doc.NOTES)))
    email: str | None = Field(None, json_schema_extra=doc.exactly(doc.nullable(doc.EMAIL)))


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
    return Problem(status, title, sentences(exc.errors.values()), errors)


UPDATED_MEANWHILE = "この顧客は同時に他の操作で更新されました。最新の内容を確認してから、もう一度お試しください。"


def router(customers: Customers, importer: CustomerImport) -> APIRouter:
    """Routes bound to the billing service's customers."""
    r = APIRouter(prefix="/api/v1/customers", tags=["customers"])
    # a path of its own: under /customers, "import" would also be a customer number to /customers/{customer_number}
    imports = APIRouter(prefix="/api/v1/customer-imports", tags=["customers"])
    not_found = "指定された顧客は見つかりません。"

    @r.post("", status_code=201, response_model=CustomerPublic, summary="Register a PPA customer",
            operation_id="createCustomer", responses={**problems(409), 201: {"links": doc.CUSTOMER_LINKS}})
    async def create(body: CustomerCreate, agency: CurrentAgency) -> CustomerPublic:
        try:
            return _public(await customers.register(agency.agency_id, body.model_dump()))
        except InvalidCustomer as exc:
            raise _invalid(exc, 422) from exc
        except CustomerConflict as exc:
            raise _invalid(exc, 409) from exc

    @imports.post("", response_model=ImportResult, summary="Import customers from a CSV of the customer list's "
            "columns (UTF-8 with or without BOM, or Shift_JIS); `dry_run=true` only says what each row would do",
            operation_id="importCustomers", responses=problems(422),
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

    @r.get("", response_model=CustomerList, summary="List and search customers", operation_id="listCustomers")
    async def search(agency: CurrentAgency, q: str = Query("", max_length=doc.SEARCH_MAX, description=doc.SEARCH),
                     page: int = Query(1, ge=1, le=100_000)) -> CustomerList:
        docs, total = await customers.search(agency.agency_id, q, page)
        return CustomerList(items=[_public({**d, "auth_code": None}) for d in docs], total=total)

    @r.get(".csv", summary="CSV of the customer list (same search as the list)", operation_id="customersCsv",
           response_class=Response, responses=doc.CSV)
    async def list_csv(agency: CurrentAgency, q: str = Query("", max_length=doc.SEARCH_MAX, description=doc.SEARCH),
                       encoding: doc.Encoding = "utf-8") -> Response:
        return csv_response(CUSTOMER_HEADER, (customer_rows(docs) async for docs in customers.chunks(
            agency.agency_id, q)), "customers.csv", encoding)

    @r.get("/{customer_number}", response_model=CustomerPublic, summary="Read a customer",
           operation_id="getCustomer", responses=problems(404))
    async def read(customer_number: CustomerNumber, agency: CurrentAgency) -> CustomerPublic:
        try:
            return _public(await customers.get(agency.agency_id, customer_number))
        except CustomerNotFound as exc:
            raise Problem(404, "Not Found", not_found) from exc

    @r.patch("/{customer_number}", response_model=CustomerPublic, summary="Edit a customer",
             operation_id="editCustomer", responses=problems(404, 409))
    async def edit(body: CustomerUpdate, agency: CurrentAgency,
                   customer_number: CustomerNumber) -> CustomerPublic:
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

    @r.delete("/{customer_number}", status_code=204, summary="Delete a customer (issued invoices stay)",
              operation_id="deleteCustomer", response_class=Response, responses=problems(404, 409))
    async def delete(customer_number: CustomerNumber, agency: CurrentAgency) -> Response:
        try:
            await customers.delete(agency.agency_id, customer_number)
        except CustomerNotFound as exc:
            raise Problem(404, "Not Found", not_found) from exc
        except ConcurrencyConflict as exc:
            raise Problem(409, "Conflict", UPDATED_MEANWHILE) from exc
        return Response(status_code=204)

    @r.post("/{customer_number}/auth-code", response_model=CustomerPublic, summary="Re-issue the auth code",
            operation_id="reissueAuthCode", responses=problems(404, 409))
    async def reissue(customer_number: CustomerNumber, agency: CurrentAgency) -> CustomerPublic:
        try:
            return _public(await customers.reissue(agency.agency_id, customer_number))
        except CustomerNotFound as exc:
            raise Problem(404, "Not Found", not_found) from exc
        except ConcurrencyConflict as exc:
            raise Problem(409, "Conflict", UPDATED_MEANWHILE) from exc

    outer = APIRouter()
    outer.include_router(r)
    outer.include_router(imports)
    return outer
