"""Monthly invoices as live drafts: daily usage from metering's events is kept per customer and day,
and an invoice is computed from it with the customer's current prices whenever it is read.

Issuing (freezing a revision, the PDF and the e-mail) is not built yet: every invoice is a draft.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from ppa_billing.domain.billing_month import (
    DEFAULT_CLOSING_DAY,
    BillingMonth,
    InvalidBillingMonth,
    invoice_number,
    parse_invoice_number,
    period_of,
)
from ppa_billing.domain.invoice import DailyUsage, InvoiceAmounts, RoundingMode, compute_invoice
from ppa_contracts import Envelope
from ppa_contracts.metering import DailyUsageComputed, DailyUsageRevised
from ppa_contracts.topics import METERING_DAILY_USAGE
from ppa_runtime.consumer import ConsumerSpec, apply_versioned
from ppa_runtime.docstore import Collection

USAGE_DAYS = "usage_days"
CENTI = Decimal("0.01")


class InvoiceNotFound(LookupError):
    """No such invoice for this agency."""


def _two(value: Decimal) -> Decimal:
    return value.quantize(CENTI)


class Invoices:
    """Daily usage kept for billing, and the invoices computed from it."""

    def __init__(self, days: Collection, customers: Collection) -> None:
        self.days = days
        self.customers = customers
        self.closing_day = DEFAULT_CLOSING_DAY
        self.rounding = RoundingMode.HALF_UP

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

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            group="billing.daily-usage", name=USAGE_DAYS, topics=[METERING_DAILY_USAGE], collections=[USAGE_DAYS],
            setup=self.setup, dedupe=False,
            handlers={DailyUsageComputed.event_type(): self.on_daily, DailyUsageRevised.event_type(): self.on_daily},
        )

    async def _compute(self, customer: dict[str, Any], month: BillingMonth, with_daily: bool) -> dict[str, Any]:
        period = period_of(month, self.closing_day)
        docs = await self.days.find({"agency_id": customer["agency_id"], "customer_number": customer["customer_number"],
                                     "date": {"$gte": period.start.isoformat(), "$lte": period.end.isoformat()}},
                                    sort=[("date", 1)])
        rows = [DailyUsage(date.fromisoformat(d["date"]), Decimal(d["generation_kwh"]), Decimal(d["sold_kwh"]),
                           Decimal(d["usage_kwh"])) for d in docs]
        start = date.fromisoformat(customer["contract_start"]) if customer.get("contract_start") else None
        end = date.fromisoformat(customer["contract_end"]) if customer.get("contract_end") else None
        amounts = compute_invoice(base_fee=Decimal(customer["base_fee"]),
                                  sell_unit_price=Decimal(customer["sell_unit_price"]),
                                  usage_unit_price=Decimal(customer["usage_unit_price"]), period=period, rows=rows,
                                  contract_start=start, contract_end=end, rounding=self.rounding,
                                  with_daily=with_daily)
        return self._public(customer, month, period, amounts, with_daily)

    @staticmethod
    def _public(customer: dict, month: BillingMonth, period, a: InvoiceAmounts, with_daily: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "invoice_number": invoice_number(month, customer["customer_number"]), "month": str(month),
            "customer_number": customer["customer_number"], "name": customer["name"],
            "period_start": period.start.isoformat(), "period_end": period.end.isoformat(),
            "contract_start": customer.get("contract_start"), "contract_end": customer.get("contract_end"),
            "base_fee": str(a.base_fee), "generation_kwh": str(a.generation_kwh), "sold_kwh": str(a.sold_kwh),
            "usage_kwh": str(a.usage_kwh), "sell_unit_price": str(a.sell_unit_price),
            "usage_unit_price": str(a.usage_unit_price), "sell_fee": str(a.sell_fee), "usage_fee": str(a.usage_fee),
            "total": str(a.total), "status": "draft", "revision": 1,
        }
        if with_daily:
            out["daily"] = [{"date": d.date.isoformat(), "generation_kwh": str(d.generation_kwh),
                             "sold_kwh": str(d.sold_kwh), "usage_kwh": str(d.usage_kwh),
                             "sell_fee": str(d.sell_fee), "usage_fee": str(d.usage_fee)} for d in a.daily]
        return out

    async def month(self, agency_id: str, month: BillingMonth, q: str = "", page: int = 1,
                    per_page: int = 50) -> tuple[list[dict[str, Any]], int]:
        """The month's invoices of an agency's customers, by customer number; `per_page=0` for all."""
        flt: dict[str, Any] = {"agency_id": agency_id}
        if q.strip():
            import re

            pattern = re.escape(q.strip())
            flt["$or"] = [{f: {"$regex": pattern, "$options": "i"}} for f in ("customer_number", "name", "name_kana")]
        total = await self.customers.count(flt)
        customers = await self.customers.find(flt, sort=[("customer_number", 1)],
                                              skip=(page - 1) * per_page if per_page else 0, limit=per_page)
        return [await self._compute(c, month, with_daily=False) for c in customers], total

    async def one(self, agency_id: str, number: str) -> dict[str, Any]:
        """One invoice with its daily rows."""
        try:
            month, customer_number = parse_invoice_number(number)
        except (InvalidBillingMonth, ValueError) as exc:
            raise InvoiceNotFound(number) from exc
        customer = await self.customers.get(f"{agency_id}:{customer_number}")
        if customer is None:
            raise InvoiceNotFound(number)
        return await self._compute(customer, month, with_daily=True)
