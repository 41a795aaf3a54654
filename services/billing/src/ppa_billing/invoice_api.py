"""Billing's invoice API: list, detail and their CSVs (headers exactly as published)."""

from __future__ import annotations

from collections.abc import AsyncIterable
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from ppa_billing.exports import ENCODINGS, csv_bytes, csv_chunks
from ppa_billing.domain.billing_month import BillingMonth, InvalidBillingMonth
from ppa_billing.invoices import InvoiceNotFound, InvoiceQuery, Invoices
from ppa_billing.issuing import InvoiceStateError, Issuing
from ppa_contracts.text import text_type
from ppa_runtime.auth import CurrentAgency
from ppa_runtime.http import Problem
from ppa_runtime.openapi import problems
from ppa_billing import contract_docs as doc

LIST_HEADER = ["利用月", "請求番号", "顧客番号", "氏名", "基本料金(円)", "発電量(kWh)", "売電量(kWh)", "利用量(kWh)",
               "売電料金(円)", "利用料金(円)", "利用料金合計(円)"]
DETAIL_HEADER = ["利用日", "発電量(kWh)", "売電量(kWh)", "利用量(kWh)", "売電料金(円)", "利用料金(円)"]


VoidReason = text_type(200, multiline=True)


Month = Annotated[str, Query(json_schema_extra=doc.exactly(doc.MONTH))]
Search = Annotated[str, Query(max_length=doc.SEARCH_MAX, description=doc.SEARCH)]
InvoiceNumber = Annotated[str, Path(json_schema_extra=doc.exactly(doc.INVOICE_NUMBER))]


class VoidRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: VoidReason = ""


def _month(text: str) -> BillingMonth:
    try:
        return BillingMonth.parse(text)
    except InvalidBillingMonth as exc:
        raise Problem(422, "Unprocessable Content", "利用月は YYYY-MM の形式で指定してください。",
                      [{"field": "month", "message": str(exc)}]) from exc


def csv_response(header: list[str], rows: list[list[Any]] | AsyncIterable[list[list[Any]]], filename: str,
                 encoding: str) -> Response:
    """UTF-8 with BOM (Excel opens it as UTF-8), or Shift_JIS on request; rows given in chunks are sent as they
    are read."""
    if encoding not in ENCODINGS:
        raise Problem(422, "Unprocessable Content", "encoding は utf-8 または shift_jis を指定してください。")
    charset = "utf-8" if encoding == "utf-8" else "shift_jis"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if isinstance(rows, list):
        return Response(csv_bytes(header, rows, encoding), media_type=f"text/csv; charset={charset}", headers=headers)
    return StreamingResponse(csv_chunks(header, rows, encoding), media_type=f"text/csv; charset={charset}",
                             headers=headers)


def _not_found(exc: Exception) -> Problem:
    return Problem(404, "Not Found", "指定された請求は見つかりません。")


def list_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    """The list CSV's rows (yen as plain integers, kWh with 2 decimals)."""
    return [[i["month"], i["invoice_number"], i["customer_number"], i["name"], i["base_fee"], i["generation_kwh"],
             i["sold_kwh"], i["usage_kwh"], i["sell_fee"], i["usage_fee"], i["total"]] for i in items]


def detail_rows(invoice: dict[str, Any]) -> list[list[Any]]:
    """The detail CSV's rows (date YYYY/MM/DD, every value with 2 decimals)."""
    two = Decimal("0.01")
    return [[d["date"].replace("-", "/"), *(str(Decimal(d[k]).quantize(two)) for k in
                                            ("generation_kwh", "sold_kwh", "usage_kwh", "sell_fee", "usage_fee"))]
            for d in invoice["daily"]]


def router(invoices: Invoices, issuing: Issuing) -> APIRouter:
    """Routes bound to the billing service's invoices."""
    r = APIRouter(prefix="/api/v1", tags=["invoices"])

    def query(month: str, q: str, invoice_number: str, customer_number: str, name: str) -> InvoiceQuery:
        return InvoiceQuery(_month(month), q=q, invoice_number=invoice_number, customer_number=customer_number,
                            name=name)

    @r.get("/invoices.csv", summary="CSV of the invoice list of a month", operation_id="invoicesCsv",
           response_class=Response, responses=doc.CSV)
    async def list_csv(agency: CurrentAgency, month: Month, q: Search = "", invoice_number: Search = "",
                       customer_number: Search = "", name: Search = "", encoding: doc.Encoding = "utf-8") -> Response:
        search = query(month, q, invoice_number, customer_number, name)
        return csv_response(LIST_HEADER, (list_rows(items) async for items in invoices.month_chunks(
            agency.agency_id, search)), f"invoices_{search.month.iso()}.csv", encoding)

    @r.get("/invoices", summary="Invoices of a month (search by invoice number, customer number, name)",
           operation_id="listInvoices", responses={200: {"model": doc.InvoiceList, "links": doc.FIRST_INVOICE_LINKS}})
    async def list_(agency: CurrentAgency, month: Month, q: Search = "", invoice_number: Search = "",
                    customer_number: Search = "", name: Search = "",
                    page: int = Query(1, ge=1, le=100_000)) -> dict[str, Any]:
        items, total = await invoices.month(agency.agency_id, query(month, q, invoice_number, customer_number, name),
                                            page=page)
        return {"items": items, "total": total}

    @r.get("/invoices/{invoice_number}.csv", summary="CSV of an invoice's daily rows", operation_id="invoiceCsv",
           response_class=Response, responses={**doc.CSV, **problems(404)})
    async def detail_csv(invoice_number: InvoiceNumber, agency: CurrentAgency,
                         encoding: doc.Encoding = "utf-8") -> Response:
        try:
            inv = await invoices.one(agency.agency_id, invoice_number)
        except InvoiceNotFound as exc:
            raise _not_found(exc) from exc
        return csv_response(DETAIL_HEADER, detail_rows(inv), f"invoice_{invoice_number}.csv", encoding)

    @r.get("/invoices/{invoice_number}.pdf", summary="The issued document (a given revision, else the current one)",
           operation_id="invoicePdf", response_class=Response, responses={**doc.PDF, **problems(404)})
    async def pdf(invoice_number: InvoiceNumber, agency: CurrentAgency,
                  revision: int | None = Query(None, ge=1, le=10_000)) -> Response:
        try:
            data, filename = await issuing.pdf(agency.agency_id, invoice_number, revision)
        except InvoiceNotFound as exc:
            raise Problem(404, "Not Found",
                          "指定された請求書（PDF）は見つかりません。発行済みの請求のみ取得できます。") from exc
        return Response(data, media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    @r.get("/invoices/{invoice_number}", summary="One invoice with its daily rows and revisions",
           operation_id="getInvoice", responses={200: {"model": doc.InvoiceDetail, "links": doc.INVOICE_LINKS},
                                                 **problems(404)})
    async def detail(invoice_number: InvoiceNumber, agency: CurrentAgency) -> dict[str, Any]:
        try:
            inv = await invoices.one(agency.agency_id, invoice_number)
        except InvoiceNotFound as exc:
            raise _not_found(exc) from exc
        return inv | {"revisions": await issuing.history(agency.agency_id, invoice_number)}

    @r.post("/invoices/{invoice_number}/issue", status_code=201, summary="Issue: freeze, render the PDF, mail it",
            operation_id="issueInvoice", responses={201: {"model": doc.InvoiceDetail, "links": doc.INVOICE_LINKS},
                                                    **problems(404, 409)})
    async def issue(invoice_number: InvoiceNumber, agency: CurrentAgency) -> dict[str, Any]:
        try:
            inv = await issuing.issue(agency.agency_id, invoice_number)
        except InvoiceNotFound as exc:
            raise _not_found(exc) from exc
        except InvoiceStateError as exc:
            raise Problem(409, "Conflict", str(exc)) from exc
        return inv | {"revisions": await issuing.history(agency.agency_id, invoice_number)}

    @r.post("/invoices/{invoice_number}/void", summary="Void an issued invoice", operation_id="voidInvoice",
            responses={200: {"model": doc.InvoiceDetail, "links": doc.INVOICE_LINKS}, **problems(404, 409)})
    async def void(invoice_number: InvoiceNumber, agency: CurrentAgency,
                   body: VoidRequest | None = None) -> dict[str, Any]:
        try:
            inv = await issuing.void(agency.agency_id, invoice_number, body.reason if body else "")
        except InvoiceNotFound as exc:
            raise _not_found(exc) from exc
        except InvoiceStateError as exc:
            raise Problem(409, "Conflict", str(exc)) from exc
        return inv | {"revisions": await issuing.history(agency.agency_id, invoice_number)}

    return r
