"""Monthly invoices: live drafts computed from the daily usage billing keeps (metering's events) with the
customer's current prices and the agency's settings; once issued, the frozen revision is shown instead.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from ppa_billing.agency_settings import AgencySettings
from ppa_billing.domain.billing_month import (
    BillingMonth,
    BillingPeriod,
    InvalidBillingMonth,
    invoice_number,
    month_of,
    parse_invoice_number,
    period_of,
)
from ppa_billing.domain.invoice import DailyUsage, RoundingMode, compute_invoice, included_consumption_tax
from ppa_contracts import Envelope
from ppa_contracts.billing import InvoiceDay, InvoiceFigures
from ppa_contracts.metering import DailyUsageComputed, DailyUsageRevised
from ppa_contracts.topics import METERING_DAILY_USAGE
from ppa_runtime.consumer import ConsumerSpec, apply_versioned
from ppa_runtime.docstore import Collection

USAGE_DAYS = "usage_days"
ISSUED = "issued_invoices"
CENTI = Decimal("0.01")
TOTAL_FIELDS = ("base_fee", "generation_kwh", "sold_kwh", "usage_kwh", "sell_fee", "usage_fee", "total")
DayChanged = Callable[[str, str, date], Awaitable[None]]


class InvoiceNotFound(LookupError):
    """No such invoice for this agency."""


@dataclass(frozen=True)
class InvoiceQuery:
    """Search of a month's invoices: each given field narrows the list (number fields match a part)."""

    month: BillingMonth
    q: str = ""
    invoice_number: str = ""
    customer_number: str = ""
    name: str = ""


def _two(value: Decimal) -> Decimal:
    return value.quantize(CENTI)


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def figures_of(customer: dict[str, Any], period: BillingPeriod, rows: Iterable[DailyUsage],
               rounding: RoundingMode, tax_rate_percent: int = 10, with_daily: bool = True) -> InvoiceFigures:
    """An invoice's figures from a customer document (or frozen figures) and its days."""
    a = compute_invoice(base_fee=Decimal(customer["base_fee"]), sell_unit_price=Decimal(customer["sell_unit_price"]),
                        usage_unit_price=Decimal(customer["usage_unit_price"]), period=period, rows=rows,
                        contract_start=_date(customer.get("contract_start")),
                        contract_end=_date(customer.get("contract_end")), rounding=rounding, with_daily=with_daily)
    return InvoiceFigures(
        name=customer["name"], period_start=period.start, period_end=period.end,
        contract_start=_date(customer.get("contract_start")), contract_end=_date(customer.get("contract_end")),
        base_fee=a.base_fee, generation_kwh=a.generation_kwh, sold_kwh=a.sold_kwh, usage_kwh=a.usage_kwh,
        sell_unit_price=a.sell_unit_price, usage_unit_price=a.usage_unit_price, sell_fee=a.sell_fee,
        usage_fee=a.usage_fee, total=a.total, consumption_tax=included_consumption_tax(a.total, tax_rate_percent),
        tax_rate_percent=tax_rate_percent, rounding=a.rounding.value,
        daily=[InvoiceDay(date=d.date, generation_kwh=d.generation_kwh, sold_kwh=d.sold_kwh, usage_kwh=d.usage_kwh,
                          sell_fee=d.sell_fee, usage_fee=d.usage_fee) for d in a.daily])


def public(number: str, month: str, customer_number: str, figures: dict[str, Any], status: str, revision: int,
           with_daily: bool) -> dict[str, Any]:
    """The invoice JSON of API.md from figures (as JSON), status and revision."""
    out = {"invoice_number": number, "month": month, "customer_number": customer_number, "name": figures["name"],
           **{k: figures.get(k) for k in ("period_start", "period_end", "contract_start", "contract_end")},
           **{k: figures[k] for k in (*TOTAL_FIELDS[:4], "sell_unit_price", "usage_unit_price", *TOTAL_FIELDS[4:])},
           "consumption_tax": figures["consumption_tax"], "tax_rate_percent": figures["tax_rate_percent"],
           "status": status, "revision": revision}
    if with_daily:
        out["daily"] = figures["daily"]
    return out


def _contains(text: str) -> dict[str, Any]:
    return {"$regex": re.escape(text.strip()), "$options": "i"}


class Invoices:
    """Daily usage kept for billing, and the invoices (drafts or issued revisions) computed from it."""

    def __init__(self, days: Collection, customers: Collection, issued: Collection, settings: AgencySettings) -> None:
        self.days = days
        self.customers = customers
        self.issued = issued
        self.settings = settings
        self.on_day_changed: DayChanged | None = None  # issuing: a change after issue makes a revision

    async def setup(self) -> None:
        await self.days.ensure_index("agency_id", "customer_number", "date")

    async def on_daily(self, event: DailyUsageComputed | DailyUsageRevised, env: Envelope) -> None:
        values = event.values if isinstance(event, DailyUsageComputed) else event.new
        # Invoices work on the 2-decimal kWh people see, so a printed invoice can be recomputed by hand.
        gen, sold = _two(values.generation_kwh), _two(values.sold_kwh)
        await apply_versioned(self.days, f"{event.agency_id}:{event.customer_number}:{event.date.isoformat()}",
                              env.aggregateversion or 0, {"$set": {
                                  "agency_id": event.agency_id, "customer_number": event.customer_number,
                                  "date": event.date.isoformat(), "generation_kwh": str(gen),
                                  "sold_kwh": str(sold), "usage_kwh": str(max(gen - sold, Decimal("0.00")))}})
        # Always, not only when the day changed: a crash after the update must still revise on redelivery.
        if self.on_day_changed is not None:
            await self.on_day_changed(event.agency_id, event.customer_number, event.date)

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            group="billing.daily-usage", name=USAGE_DAYS, topics=[METERING_DAILY_USAGE], collections=[USAGE_DAYS],
            setup=self.setup, dedupe=False,
            handlers={DailyUsageComputed.event_type(): self.on_daily, DailyUsageRevised.event_type(): self.on_daily},
        )

    async def rows(self, agency_id: str, customer_numbers: list[str] | None, start: date,
                   end: date) -> dict[str, list[DailyUsage]]:
        """Daily usage per customer in a date range (every customer of the agency when None)."""
        flt: dict[str, Any] = {"agency_id": agency_id, "date": {"$gte": start.isoformat(), "$lte": end.isoformat()}}
        if customer_numbers is not None:
            flt["customer_number"] = customer_numbers[0] if len(customer_numbers) == 1 else {"$in": customer_numbers}
        out: dict[str, list[DailyUsage]] = {}
        for d in await self.days.find(flt, sort=[("date", 1)]):
            out.setdefault(d["customer_number"], []).append(DailyUsage(
                date.fromisoformat(d["date"]), Decimal(d["generation_kwh"]), Decimal(d["sold_kwh"]),
                Decimal(d["usage_kwh"])))
        return out

    async def versioned_rows(self, agency_id: str, customer_number: str, start: date,
                             end: date) -> dict[date, tuple[DailyUsage, int]]:
        """A customer's days in a date range with the version of each day's usage."""
        docs = await self.days.find({"agency_id": agency_id, "customer_number": customer_number,
                                     "date": {"$gte": start.isoformat(), "$lte": end.isoformat()}})
        return {date.fromisoformat(d["date"]): (DailyUsage(date.fromisoformat(d["date"]), Decimal(d["generation_kwh"]),
                                                           Decimal(d["sold_kwh"]), Decimal(d["usage_kwh"])),
                                                int(d.get("_v", 0))) for d in docs}

    async def _drafts(self, agency_id: str, customers: list[dict[str, Any]], month: BillingMonth,
                      with_daily: bool) -> list[dict[str, Any]]:
        settings = await self.settings.get(agency_id)
        period = period_of(month, settings.closing_day)
        numbers = [c["customer_number"] for c in customers]
        rows = await self.rows(agency_id, numbers, period.start, period.end) if numbers else {}
        out = []
        for c in customers:
            figures = figures_of(c, period, rows.get(c["customer_number"], []), settings.rounding,
                                 settings.tax_rate_percent, with_daily)
            out.append(public(invoice_number(month, c["customer_number"]), str(month), c["customer_number"],
                              figures.model_dump(mode="json"), "draft", 0, with_daily))
        return out

    @staticmethod
    def _issued_public(doc: dict[str, Any], with_daily: bool) -> dict[str, Any]:
        out = public(doc["invoice_number"], doc["month"], doc["customer_number"], doc["figures"], doc["status"],
                     doc["revision"], with_daily)
        out.update({k: doc.get(k) for k in ("document_id", "issued_at", "revised_at", "voided_at", "emailed_to")})
        return out

    def _filters(self, agency_id: str, query: InvoiceQuery) -> tuple[dict, dict] | None:
        """Filters on customers and on issued invoices; None when the query cannot match anything."""
        customer: dict[str, Any] = {"agency_id": agency_id}
        issued: dict[str, Any] = {"agency_id": agency_id, "month": str(query.month)}
        ands_c: list[dict] = []
        ands_i: list[dict] = []
        if query.invoice_number.strip():
            try:
                month, number = parse_invoice_number(query.invoice_number)
            except InvalidBillingMonth:
                return None
            if month != query.month:
                return None
            customer["customer_number"] = issued["customer_number"] = number
        if query.customer_number.strip():
            ands_c.append({"customer_number": _contains(query.customer_number)})
            ands_i.append({"customer_number": _contains(query.customer_number)})
        if query.name.strip():
            ands_c.append({"$or": [{"name": _contains(query.name)}, {"name_kana": _contains(query.name)}]})
            ands_i.append({"figures.name": _contains(query.name)})
        if query.q.strip():
            ands_c.append({"$or": [{f: _contains(query.q)} for f in ("customer_number", "name", "name_kana")]})
            ands_i.append({"$or": [{"customer_number": _contains(query.q)}, {"figures.name": _contains(query.q)}]})
        if ands_c:
            customer["$and"] = ands_c
        if ands_i:
            issued["$and"] = ands_i
        return customer, issued

    async def month(self, agency_id: str, query: InvoiceQuery | BillingMonth, q: str = "", page: int = 1,
                    per_page: int = 50, with_totals: bool = False) -> tuple[list[dict[str, Any]], int] | tuple[
                        list[dict[str, Any]], int, dict[str, str]]:
        """A month's invoices by customer number: issued ones as frozen, the others as drafts.

        `per_page=0` returns all; `with_totals` adds the sums over every match (not just the page).
        Issued invoices of deleted customers stay listed.
        """
        if isinstance(query, BillingMonth):
            query = InvoiceQuery(query, q=q)
        filters = self._filters(agency_id, query)
        if filters is None:
            return ([], 0, _sum([])) if with_totals else ([], 0)
        customers = {c["customer_number"]: c for c in await self.customers.find(filters[0])}
        issued = {d["customer_number"]: d for d in await self.issued.find(filters[1])}
        numbers = sorted(customers.keys() | issued.keys())
        chosen = numbers[(page - 1) * per_page: page * per_page] if per_page else numbers
        items = await self._items(agency_id, query.month, chosen, customers, issued)
        if not with_totals:
            return items, len(numbers)
        everything = items if len(chosen) == len(numbers) else await self._items(
            agency_id, query.month, numbers, customers, issued)
        return items, len(numbers), _sum([i for i in everything if i["status"] != "voided"])

    async def _items(self, agency_id: str, month: BillingMonth, numbers: list[str], customers: dict,
                     issued: dict) -> list[dict[str, Any]]:
        drafts = {d["customer_number"]: d for d in await self._drafts(
            agency_id, [customers[n] for n in numbers if n not in issued], month, with_daily=False)}
        return [self._issued_public(issued[n], False) if n in issued else drafts[n] for n in numbers]

    async def one(self, agency_id: str, number: str) -> dict[str, Any]:
        """One invoice with its daily rows: the issued revision if any, else the live draft."""
        try:
            month, customer_number = parse_invoice_number(number)
        except (InvalidBillingMonth, ValueError) as exc:
            raise InvoiceNotFound(number) from exc
        doc = await self.issued.get(f"{agency_id}:{number}")
        if doc is not None:
            return self._issued_public(doc, True)
        customer = await self.customers.get(f"{agency_id}:{customer_number}")
        if customer is None:
            raise InvoiceNotFound(number)
        return (await self._drafts(agency_id, [customer], month, with_daily=True))[0]

    async def of_customer(self, agency_id: str, customer_number: str, month: BillingMonth | None = None,
                          number: str = "") -> list[dict[str, Any]]:
        """A customer's invoices, newest month first: months with usage or an issued invoice."""
        customer = await self.customers.get(f"{agency_id}:{customer_number}")
        if customer is None:
            raise InvoiceNotFound(customer_number)
        settings = await self.settings.get(agency_id)
        days = await self.days.find({"agency_id": agency_id, "customer_number": customer_number})
        issued = {d["month"]: d for d in await self.issued.find({"agency_id": agency_id,
                                                                 "customer_number": customer_number})}
        months = {month_of(date.fromisoformat(d["date"]), settings.closing_day) for d in days}
        months |= {BillingMonth.parse(m) for m in issued}
        if number.strip():
            try:
                wanted, wanted_customer = parse_invoice_number(number)
            except InvalidBillingMonth:
                return []
            months = {m for m in months if m == wanted and wanted_customer == customer_number}
        if month is not None:
            months = {m for m in months if m == month}
        out = []
        for m in sorted(months, reverse=True):
            if str(m) in issued:
                out.append(self._issued_public(issued[str(m)], False))
            else:
                out += await self._drafts(agency_id, [customer], m, with_daily=False)
        return out


def _sum(items: list[dict[str, Any]]) -> dict[str, str]:
    """Totals of the list's columns (voided invoices excluded by the caller)."""
    return {k: str(sum((Decimal(i[k]) for i in items), Decimal(0))) for k in TOTAL_FIELDS} | {"count": str(len(items))}
