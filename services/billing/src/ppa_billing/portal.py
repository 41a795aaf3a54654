"""What the agency portal's billing pages ask of billing, in plain values: the gateway renders them.

Every refusal is a `PortalError` (a ValueError with Japanese messages per field) or a LookupError (404).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from ppa_billing.agency_settings import AgencySettings, public
from ppa_billing.customer_import import CustomerImport
from ppa_billing.customers import CustomerConflict, CustomerNotFound, Customers, InvalidCustomer
from ppa_billing.domain.billing_month import MONTH_MESSAGE, BillingMonth, InvalidBillingMonth, month_of
from ppa_billing.domain.settings import InvalidSettings
from ppa_billing.exports import CUSTOMER_HEADER, csv_bytes, csv_chunks, customer_rows
from ppa_billing.invoice_api import DETAIL_HEADER, LIST_HEADER, detail_rows, list_rows
from ppa_billing.invoices import InvoiceNotFound, InvoiceQuery, Invoices
from ppa_billing.issuing import InvoiceStateError, Issuing, today_jst
from ppa_runtime.eventstore import ConcurrencyConflict

PER_PAGE = 20


class PortalError(ValueError):
    """A refusal to show on the page: field → Japanese message ("" for the whole form)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = errors


def _month(text: str) -> BillingMonth:
    try:
        return BillingMonth.parse(text)
    except InvalidBillingMonth as exc:
        raise PortalError({"month": MONTH_MESSAGE}) from exc


def _named(stem: str, encoding: str) -> str:
    """A CSV's file name; the Shift_JIS copy says so (both may sit in one downloads folder)."""
    return f"{stem}_sjis.csv" if encoding == "shift_jis" else f"{stem}.csv"


class BillingPortal:
    """Page-sized operations of one billing service, always scoped to the caller's agency."""

    def __init__(self, customers: Customers, settings: AgencySettings, invoices: Invoices, issuing: Issuing,
                 customer_import: CustomerImport) -> None:
        self.customers = customers
        self.customer_import = customer_import
        self.settings = settings
        self.invoices = invoices
        self.issuing = issuing

    # settings
    async def get_settings(self, agency_id: str) -> dict[str, Any]:
        return public(await self.settings.get(agency_id))

    async def save_settings(self, agency_id: str, form: dict[str, Any]) -> dict[str, Any]:
        try:
            return public(await self.settings.change(agency_id, form))
        except InvalidSettings as exc:
            raise PortalError(exc.errors) from exc
        except ConcurrencyConflict as exc:
            raise PortalError({"": "設定が同時に変更されました。もう一度お試しください。"}) from exc

    # invoices
    async def default_month(self, agency_id: str, today: date | None = None) -> str:
        """The month 請求管理 opens on: the last closed billing month (the one to issue next) when it has invoices,
        else the latest earlier month that has some, else the latest month that has any (data of the past, or
        only the open month so far); the last closed month when there are none at all."""
        closing = (await self.settings.get(agency_id)).closing_day
        closed = str(month_of(today or today_jst(), closing).previous())
        return await self.invoices.latest_month(agency_id, closed) or closed

    async def invoice_list(self, agency_id: str, month: str, invoice_number: str = "", customer_number: str = "",
                           name: str = "", page: int = 1) -> dict[str, Any]:
        query = InvoiceQuery(_month(month), invoice_number=invoice_number, customer_number=customer_number, name=name)
        items, total, totals = await self.invoices.month(agency_id, query, page=page, per_page=PER_PAGE,
                                                         with_totals=True)
        return {"items": items, "total": total, "totals": totals, "month": str(query.month),
                "pages": max(1, -(-total // PER_PAGE)), "page": page}

    async def invoice_list_csv(self, agency_id: str, month: str, invoice_number: str = "", customer_number: str = "",
                               name: str = "", encoding: str = "utf-8") -> tuple[AsyncIterator[bytes], str]:
        """The month list's CSV, sent a chunk of invoices at a time."""
        query = InvoiceQuery(_month(month), invoice_number=invoice_number, customer_number=customer_number, name=name)
        rows = (list_rows(items) async for items in self.invoices.month_chunks(agency_id, query))
        return csv_chunks(LIST_HEADER, rows, encoding), _named(f"invoices_{query.month.iso()}", encoding)

    async def selected_invoices(self, agency_id: str, month: str, numbers: list[str] | None,
                                invoice_number: str = "", customer_number: str = "", name: str = "") -> list[dict]:
        """The month's invoices of the agency that match the search and (unless `numbers` is None: every match)
        are among `numbers`; a number that is not the agency's own is simply not found."""
        query = InvoiceQuery(_month(month), invoice_number=invoice_number, customer_number=customer_number, name=name)
        wanted = None if numbers is None else set(numbers)
        return [i async for items in self.invoices.month_chunks(agency_id, query) for i in items
                if wanted is None or i["invoice_number"] in wanted]

    async def selected_invoices_csv(self, agency_id: str, invoices: list[dict], month: str) -> tuple[bytes, str]:
        return csv_bytes(LIST_HEADER, list_rows(invoices)), f"invoices_{_month(month).iso()}_selected.csv"

    async def invoice(self, agency_id: str, number: str) -> dict[str, Any]:
        inv = await self.invoices.one(agency_id, number)
        return inv | {"revisions": await self.issuing.history(agency_id, number)}

    async def invoice_csv(self, agency_id: str, number: str, encoding: str = "utf-8") -> tuple[bytes, str]:
        inv = await self.invoices.one(agency_id, number)
        return csv_bytes(DETAIL_HEADER, detail_rows(inv), encoding), _named(f"invoice_{number}", encoding)

    async def invoice_pdf(self, agency_id: str, number: str, revision: int | None) -> tuple[bytes, str]:
        return await self.issuing.pdf(agency_id, number, revision)

    async def issue_check(self, agency_id: str, number: str) -> dict[str, Any]:
        """What 請求書発行 would do now, for the confirmation: the figures it would freeze, the revision, who is
        mailed, and anything that stops it (then the page says what and where to fix it)."""
        try:
            plan = await self.issuing.check(agency_id, number)
        except InvoiceNotFound as exc:
            raise LookupError(number) from exc
        draft = (await self.invoices.draft(agency_id, plan["customer"], plan["month"])
                 if plan["customer"] is not None else None)
        return {"revision": plan["revision"], "reissue": plan["reissue"], "emailed_to": plan["emailed_to"],
                "problems": plan["problems"], "missing_settings": plan["missing_settings"], "draft": draft,
                "period": plan["period"], "month": str(plan["month"]), "issuer": public(plan["settings"])}

    async def issue(self, agency_id: str, number: str) -> dict[str, Any]:
        try:
            return await self.issuing.issue(agency_id, number)
        except InvoiceStateError as exc:
            raise PortalError({"": str(exc)}) from exc

    async def void(self, agency_id: str, number: str, reason: str = "") -> dict[str, Any]:
        try:
            return await self.issuing.void(agency_id, number, reason)
        except InvoiceStateError as exc:
            raise PortalError({"": str(exc)}) from exc

    async def customer_invoices(self, agency_id: str, customer_number: str, month: str = "",
                                invoice_number: str = "") -> list[dict[str, Any]]:
        wanted = _month(month) if month.strip() else None
        try:
            return await self.invoices.of_customer(agency_id, customer_number, wanted, invoice_number)
        except InvoiceNotFound as exc:
            raise CustomerNotFound(customer_number) from exc

    async def customer_invoice_page(self, agency_id: str, customer_number: str, month: str = "",
                                    invoice_number: str = "", page: int = 1) -> dict[str, Any]:
        """A page of a customer's invoices (newest first) with their count, like the month list's pages."""
        items = await self.customer_invoices(agency_id, customer_number, month, invoice_number)
        pages = max(1, -(-len(items) // PER_PAGE))
        page = min(page, pages)
        return {"items": items[(page - 1) * PER_PAGE:page * PER_PAGE], "total": len(items), "page": page,
                "pages": pages}

    async def customer_invoices_csv(self, agency_id: str, customer_number: str, month: str = "",
                                    invoice_number: str = "", encoding: str = "utf-8") -> tuple[bytes, str]:
        """Every invoice the customer's list shows for the search, as the month list's CSV."""
        items = await self.customer_invoices(agency_id, customer_number, month, invoice_number)
        return csv_bytes(LIST_HEADER, list_rows(items), encoding), _named(f"invoices_{customer_number}", encoding)

    # customers
    async def customer_list(self, agency_id: str, customer_number: str = "", name: str = "", email: str = "",
                            page: int = 1) -> dict[str, Any]:
        docs, total = await self.customers.search(agency_id, page=page, per_page=PER_PAGE,
                                                  customer_number=customer_number, name=name, email=email)
        return {"items": docs, "total": total, "page": page, "pages": max(1, -(-total // PER_PAGE))}

    async def customer_csv(self, agency_id: str, customer_number: str = "", name: str = "",
                           email: str = "", encoding: str = "utf-8") -> tuple[AsyncIterator[bytes], str]:
        """The customer list's CSV, sent a chunk of customers at a time."""
        rows = (customer_rows(docs) async for docs in self.customers.chunks(
            agency_id, customer_number=customer_number, name=name, email=email))
        return csv_chunks(CUSTOMER_HEADER, rows, encoding), _named("customers", encoding)

    async def selected_customers(self, agency_id: str, numbers: list[str]) -> list[dict[str, Any]]:
        """The agency's own live customers among `numbers`, by number (another agency's number is not found)."""
        docs = await self.customers.coll.get_many([f"{agency_id}:{n}" for n in numbers])
        return sorted(await self.customers._live(list(docs.values())), key=lambda d: d["customer_number"])

    def selected_customers_csv(self, docs: list[dict[str, Any]]) -> tuple[bytes, str]:
        return csv_bytes(CUSTOMER_HEADER, customer_rows(docs)), "customers_selected.csv"

    async def delete_customers(self, agency_id: str, numbers: list[str]) -> int:
        """Delete each of the agency's customers among `numbers` (one event each); returns how many went."""
        deleted = 0
        for doc in await self.selected_customers(agency_id, numbers):
            try:
                await self.customers.delete(agency_id, doc["customer_number"])
                deleted += 1
            except (CustomerNotFound, ConcurrencyConflict):
                continue  # deleted or changed meanwhile by someone else: left as it is now
        return deleted

    async def customer(self, agency_id: str, number: str) -> dict[str, Any]:
        return await self.customers.get(agency_id, number)

    async def register_customer(self, agency_id: str, form: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.customers.register(agency_id, form)
        except (InvalidCustomer, CustomerConflict) as exc:
            raise PortalError(exc.errors) from exc

    async def change_customer(self, agency_id: str, number: str, form: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.customers.change(agency_id, number, form)
        except (InvalidCustomer, CustomerConflict) as exc:
            raise PortalError(exc.errors) from exc
        except ConcurrencyConflict as exc:
            raise PortalError(
                {"": "他の操作で更新されました。画面を開き直してから、もう一度操作してください。"}) from exc

    async def delete_customer(self, agency_id: str, number: str) -> None:
        await self.customers.delete(agency_id, number)

    async def reissue_auth_code(self, agency_id: str, number: str) -> dict[str, Any]:
        return await self.customers.reissue(agency_id, number)
