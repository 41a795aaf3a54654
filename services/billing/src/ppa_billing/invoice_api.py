"""Billing's invoice API: list, detail and their CSVs (headers exactly as published)."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from ppa_billing.domain.billing_month import BillingMonth, InvalidBillingMonth
from ppa_billing.invoices import InvoiceNotFound, Invoices
from ppa_runtime.auth import CurrentAgency
from ppa_runtime.http import Problem

LIST_HEADER = ["利用月", "請求番号", "顧客番号", "氏名", "基本料金(円)", "発電量(kWh)", "売電量(kWh)", "利用量(kWh)",
               "売電料金(円)", "利用料金(円)", "利用料金合計(円)"]
DETAIL_HEADER = ["利用日", "発電量(kWh)", "売電量(kWh)", "利用量(kWh)", "売電料金(円)", "利用料金(円)"]


def _month(text: str) -> BillingMonth:
    try:
        return BillingMonth.parse(text)
    except InvalidBillingMonth as exc:
        raise Problem(422, "Unprocessable Content", "利用月は YYYY-MM の形式で指定してください。",
                      [{"field": "month", "message": str(exc)}]) from exc


def csv_response(header: list[str], rows: list[list[Any]], filename: str, encoding: str) -> Response:
    """UTF-8 with BOM (Excel opens it as UTF-8), or Shift_JIS on request."""
    if encoding not in ("utf-8", "shift_jis"):
        raise Problem(422, "Unprocessable Content", "encoding は utf-8 または shift_jis を指定してください。")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue()
    body = ("\ufeff" + text).encode("utf-8") if encoding == "utf-8" else text.encode("cp932", errors="replace")
    charset = "utf-8" if encoding == "utf-8" else "shift_jis"
    return Response(body, media_type=f"text/csv; charset={charset}",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def router(invoices: Invoices) -> APIRouter:
    """Routes bound to the billing service's invoices."""
    r = APIRouter(prefix="/api/v1", tags=["invoices"])
    not_found = "指定された請求は見つかりません。"

    @r.get("/invoices.csv", summary="CSV of the invoice list of a month")
    async def list_csv(agency: CurrentAgency, month: str, q: str = "", encoding: str = "utf-8") -> Response:
        m = _month(month)
        items, _ = await invoices.month(agency.agency_id, m, q, per_page=0)
        rows = [[i["month"], i["invoice_number"], i["customer_number"], i["name"], i["base_fee"], i["generation_kwh"],
                 i["sold_kwh"], i["usage_kwh"], i["sell_fee"], i["usage_fee"], i["total"]] for i in items]
        return csv_response(LIST_HEADER, rows, f"invoices_{m.iso()}.csv", encoding)

    @r.get("/invoices", summary="Invoices of a month")
    async def list_(agency: CurrentAgency, month: str, q: str = "",
                    page: int = Query(1, ge=1, le=100_000)) -> dict[str, Any]:
        items, total = await invoices.month(agency.agency_id, _month(month), q, page)
        return {"items": items, "total": total}

    @r.get("/invoices/{invoice_number}.csv", summary="CSV of an invoice's daily rows")
    async def detail_csv(invoice_number: str, agency: CurrentAgency, encoding: str = "utf-8") -> Response:
        try:
            inv = await invoices.one(agency.agency_id, invoice_number)
        except InvoiceNotFound as exc:
            raise Problem(404, "Not Found", not_found) from exc
        rows = [[d["date"].replace("-", "/"), d["generation_kwh"], d["sold_kwh"], d["usage_kwh"], d["sell_fee"],
                 d["usage_fee"]] for d in inv["daily"]]
        return csv_response(DETAIL_HEADER, rows, f"invoice_{invoice_number}.csv", encoding)

    @r.get("/invoices/{invoice_number}", summary="One invoice with its daily rows")
    async def detail(invoice_number: str, agency: CurrentAgency) -> dict[str, Any]:
        try:
            return await invoices.one(agency.agency_id, invoice_number)
        except InvoiceNotFound as exc:
            raise Problem(404, "Not Found", not_found) from exc

    return r
