"""Monthly invoices: live drafts computed from the daily usage billing keeps (metering's events) with the
customer's current prices and the agency's settings; once issued, the frozen revision is shown instead.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any

from ppa_billing.agency_settings import AgencySettings
from ppa_billing.domain.billing_month import (
    BillingMonth,
    BillingPeriod,
    ClosingDay,
    InvalidBillingMonth,
    invoice_number,
    month_of,
    parse_invoice_number,
    period_of,
)
from ppa_billing.domain.invoice import (
    DailyUsage,
    RoundingMode,
    compute_invoice,
    compute_totals,
    included_consumption_tax,
)
from ppa_billing.exports import in_chunks
from ppa_billing.invoice_list import customer_lines, searchable
from ppa_contracts.billing import InvoiceDay, InvoiceFigures
from ppa_runtime.docstore import Collection

ISSUED = "issued_invoices"
CHUNK = 2000  # invoices read at a time for a file of the whole list (its CSV)
TOTAL_FIELDS = ("base_fee", "generation_kwh", "sold_kwh", "usage_kwh", "sell_fee", "usage_fee", "total")


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


@lru_cache(maxsize=512)
def _period(month: BillingMonth, closing_day: ClosingDay) -> BillingPeriod:
    return period_of(month, closing_day)


def draft_of(customer: dict[str, Any], month: BillingMonth, closing_day: ClosingDay, days: dict[str, list[str]],
             rounding: RoundingMode, tax_rate_percent: int = 10) -> dict[str, Any]:
    """A draft's invoice JSON without its daily table (`public` of `figures_of` with the status `draft`), from
    a customer document and the days a month list line keeps (ISO date → kWh generation, sold, usage as text):
    the same arithmetic and JSON, without building the figures' model, for the month list's thousands of lines a
    batch."""
    period = _period(month, closing_day)
    first, last = period.start.isoformat(), period.end.isoformat()
    start, end = _date(customer.get("contract_start")), _date(customer.get("contract_end"))
    a = compute_totals(base_fee=Decimal(customer["base_fee"]), sell_unit_price=Decimal(customer["sell_unit_price"]),
                       usage_unit_price=Decimal(customer["usage_unit_price"]), period=period, days=days,
                       contract_start=start, contract_end=end, rounding=rounding)
    figures = {"name": customer["name"], "period_start": period.start.isoformat(),
               "period_end": period.end.isoformat(), "contract_start": start and start.isoformat(),
               "contract_end": end and end.isoformat(), "consumption_tax": str(included_consumption_tax(
                   a.total, tax_rate_percent)), "tax_rate_percent": tax_rate_percent,
               **{k: str(getattr(a, k)) for k in (*TOTAL_FIELDS, "sell_unit_price", "usage_unit_price")},
               "metered_days": sum(1 for day in days if first <= day <= last)}
    number = customer["customer_number"]
    return public(invoice_number(month, number), str(month), number, figures, "draft", 0, False)


def public(number: str, month: str, customer_number: str, figures: dict[str, Any], status: str, revision: int,
           with_daily: bool) -> dict[str, Any]:
    """The invoice JSON of API.md from figures (as JSON), status and revision."""
    out = {"invoice_number": number, "month": month, "customer_number": customer_number, "name": figures["name"],
           **{k: figures.get(k) for k in ("period_start", "period_end", "contract_start", "contract_end")},
           **{k: figures[k] for k in (*TOTAL_FIELDS[:4], "sell_unit_price", "usage_unit_price", *TOTAL_FIELDS[4:])},
           "consumption_tax": figures["consumption_tax"], "tax_rate_percent": figures["tax_rate_percent"],
           "status": status, "revision": revision,
           # 0: a month without readings (the base fee only; the screens say 計測データなし)
           "metered_days": figures.get("metered_days", len(figures.get("daily") or ()))}
    if with_daily:
        out["daily"] = figures["daily"]
    return out


@dataclass
class _Matches:
    """A text search's finds: customer numbers in order; per totals bucket the numbers found, and the buckets
    all of whose lines were found (their sums are then the totals); the month's sums by bucket."""

    numbers: list[str]
    buckets: dict[str, list[str]]
    whole: set[str]
    sums: dict[str, dict[str, Any]]


def _contains(text: str) -> dict[str, Any]:
    return {"$regex": re.escape(text.strip()), "$options": "i"}


class Invoices:
    """The invoices (drafts or issued revisions) computed from the daily usage the month list keeps."""

    def __init__(self, customers: Collection, issued: Collection, settings: AgencySettings,
                 lines: Collection, sums: Collection, search: Collection, buckets: Collection,
                 months_of: Collection) -> None:
        self.lines = lines  # the month list's projection (ppa_billing.invoice_list), with each line's days
        self.months_of = months_of  # its months per customer (the lines of a customer by `_id`)
        self.search = search  # its search entries, per totals bucket
        self.buckets = buckets  # its totals entries, per bucket
        self.sums = sums
        self.customers = customers
        self.issued = issued
        self.settings = settings

    async def latest_month(self, agency_id: str, at_most: str) -> str | None:
        """The latest billing month up to `at_most` that lists invoices, else the latest later one; None when no
        month does. Read from the months' totals buckets (each keeps how many lines it lists)."""
        listed = {"agency_id": agency_id, "listed": {"$gt": 0}}
        for bound in ({"$lte": at_most}, {"$gt": at_most}):
            found = await self.sums.find({**listed, "month": bound}, sort=[("month", -1)], limit=1)
            if found:
                return found[0]["month"]
        return None

    async def versioned_days(self, agency_id: str, customer_numbers: list[str], start: date,
                             end: date) -> dict[str, dict[date, tuple[DailyUsage, int]]]:
        """Customers' days in a date range with the version of each day's usage, read from the month list's
        lines (ppa_billing.invoice_list), which keep every day of a customer once, filed by billing month.

        Whatever the closing day, a day is in the line of its own calendar month or of the month before.
        """
        if not customer_numbers:
            return {}
        before = (start.year, start.month - 1) if start.month > 1 else (start.year - 1, 12)
        low, high = start.isoformat(), end.isoformat()
        out: dict[str, dict[date, tuple[DailyUsage, int]]] = {}
        for line in await customer_lines(self.lines, self.months_of, agency_id, customer_numbers,
                                         f"{before[0]:04d}/{before[1]:02d}", f"{end.year:04d}/{end.month:02d}"):
            days = out.setdefault(line["customer_number"], {})
            for iso, (gen, sold, usage, version) in line.get("days", {}).items():
                if low <= iso <= high:
                    day = date.fromisoformat(iso)
                    known = days.get(day)
                    if known is None or version > known[1]:  # in two lines only while a refile is written
                        days[day] = (DailyUsage(day, Decimal(gen), Decimal(sold), Decimal(usage)), version)
        return out

    async def rows(self, agency_id: str, customer_numbers: list[str], start: date,
                   end: date) -> dict[str, list[DailyUsage]]:
        """Daily usage per customer in a date range, by date."""
        found = await self.versioned_days(agency_id, customer_numbers, start, end)
        return {number: [days[d][0] for d in sorted(days)] for number, days in found.items()}

    async def versioned_rows(self, agency_id: str, customer_number: str, start: date,
                             end: date) -> dict[date, tuple[DailyUsage, int]]:
        """A customer's days in a date range with the version of each day's usage."""
        return (await self.versioned_days(agency_id, [customer_number], start, end)).get(customer_number, {})

    async def _drafts(self, agency_id: str, customers: list[dict[str, Any]], month: BillingMonth,
                      with_daily: bool) -> list[dict[str, Any]]:
        settings = await self.settings.get(agency_id)
        period = period_of(month, settings.closing_day)
        numbers = [c["customer_number"] for c in customers]
        rows = await self.rows(agency_id, numbers, period.start, period.end) if numbers else {}
        out = []
        for c in customers:
            own = rows.get(c["customer_number"], [])
            figures = figures_of(c, period, own, settings.rounding, settings.tax_rate_percent, with_daily)
            out.append(public(invoice_number(month, c["customer_number"]), str(month), c["customer_number"],
                              {**figures.model_dump(mode="json"), "metered_days": sum(1 for r in own if r.date in period)},
                              "draft", 0, with_daily))
        return out

    @staticmethod
    def _issued_public(doc: dict[str, Any], with_daily: bool) -> dict[str, Any]:
        out = public(doc["invoice_number"], doc["month"], doc["customer_number"], doc["figures"], doc["status"],
                     doc["revision"], with_daily)
        out.update({k: doc.get(k) for k in ("document_id", "issued_at", "revised_at", "voided_at", "emailed_to")})
        return out

    def _line_filter(self, agency_id: str, query: InvoiceQuery) -> tuple[dict[str, Any], bool] | None:
        """The filter on the month's invoice lines, and whether it searches; None when nothing can match."""
        flt: dict[str, Any] = {"agency_id": agency_id, "month": str(query.month), "listed": True}
        ands: list[dict] = []
        if query.invoice_number.strip():
            try:
                month, number = parse_invoice_number(query.invoice_number)
            except InvalidBillingMonth:
                return None
            if month != query.month:
                return None
            flt["customer_number"] = number
        if query.customer_number.strip():
            ands.append({"customer_number": _contains(query.customer_number)})
        if query.name.strip():
            ands.append({"$or": [{"name": _contains(query.name)}, {"name_kana": _contains(query.name)}]})
        if query.q.strip():
            ands.append({"$or": [{f: _contains(query.q)} for f in ("customer_number", "name", "name_kana")]})
        if ands:
            flt["$and"] = ands
        return flt, bool(ands) or "customer_number" in flt

    async def month(self, agency_id: str, query: InvoiceQuery | BillingMonth, q: str = "", page: int = 1,
                    per_page: int = 50, with_totals: bool = False) -> tuple[list[dict[str, Any]], int] | tuple[
                        list[dict[str, Any]], int, dict[str, str]]:
        """A month's invoices by customer number, paged in the store: issued ones as frozen, the others as
        drafts (customers with usage in the month, or an issued invoice; deleted customers' issued ones too).

        `per_page=0` returns all; `with_totals` adds the sums over every match (voided ones excluded).
        """
        from ppa_billing.invoice_list import current_figures, sum_lines

        if isinstance(query, BillingMonth):
            query = InvoiceQuery(query, q=q)
        found = self._line_filter(agency_id, query)
        if found is None:
            return ([], 0, sum_lines([])) if with_totals else ([], 0)
        flt, searching = found
        skip = (page - 1) * per_page if per_page else 0
        if "$and" in flt:  # a text search (part of a name or number)
            matches = await self._matches(agency_id, query, flt.get("customer_number"))
            if matches is not None:
                return await self._found(agency_id, query.month, matches, skip, per_page, with_totals)
        lines = await self._lines(flt, skip, per_page)
        last_page = not per_page or 0 < len(lines) < per_page or (page == 1 and not lines)
        sums = await self.sums.find({"agency_id": agency_id, "month": str(query.month)}) if not searching and (
            with_totals or not last_page) else []
        if last_page:
            total = skip + len(lines)  # the last page: its rows say how many there are
        elif sums and all("listed" in d for d in sums):
            # Else the month's totals buckets say (each keeps how many lines it lists); counting the index
            # instead costs about 1 ms per 3,000 lines. They are written just after the lines: never fewer.
            counted = sum(int(d["listed"]) for d in sums)
            total = max(counted, skip + len(lines)) if lines else counted
        else:  # a search, or buckets written before they kept the count
            total = await self.lines.count(flt)
        items = await self._line_items(agency_id, query.month, lines)
        if not with_totals:
            return items, total
        if searching:
            every = lines if len(lines) == total else await self._lines(flt, 0, 0)
            totals = sum_lines([f for line in every if (f := current_figures(line)) is not None])
        else:
            totals = _add_sums(sums)
        return items, total, totals

    async def month_chunks(self, agency_id: str, query: InvoiceQuery) -> AsyncIterator[list[dict[str, Any]]]:
        """The invoices `month` lists for the query, in the same order, `CHUNK` at a time: a CSV of every invoice
        of the month holds a chunk in memory, not the month."""
        found = self._line_filter(agency_id, query)
        if found is None:
            return
        flt, _ = found
        matches = await self._matches(agency_id, query, flt.get("customer_number")) if "$and" in flt else None
        if matches is not None:
            for at in range(0, len(matches.numbers), CHUNK):
                items, _ = await self._found(agency_id, query.month, matches, at, CHUNK, with_totals=False)
                yield items
            return
        async for lines in in_chunks(lambda narrowed, n: self._lines(narrowed, 0, n), flt, CHUNK):
            yield await self._line_items(agency_id, query.month, lines)

    async def _lines(self, flt: dict[str, Any], skip: int, limit: int) -> list[dict[str, Any]]:
        """Matching lines by customer number (without their days: two thirds of a line, and the list needs only
        its figures)."""
        return await self.lines.find(flt, sort=[("customer_number", 1)], skip=skip, limit=limit, without=("days",))

    async def _matches(self, agency_id: str, query: InvoiceQuery, number: str | None) -> _Matches | None:
        """What a text search finds among the month's listed lines, read from the month's search texts (one per
        1,000 customer numbers: about 100 short documents for 100,000 lines, instead of every line); None when
        a totals bucket of the month has none (written before them: the caller searches the lines themselves).
        Parts match case-insensitively, like the filter on the lines."""
        month = {"agency_id": agency_id, "month": str(query.month)}
        # a bucket's search text and totals are written together: fewer texts, some written before them
        texts, sums = await asyncio.gather(self.search.count(month), self.sums.find(month))
        if texts < len(sums):
            return None
        in_number, in_name, anywhere = (searchable(query.customer_number.strip()), searchable(query.name.strip()),
                                        searchable(query.q.strip()))
        parts = [p for p in (number, in_number, in_name, anywhere) if p]
        found = _Matches([], {}, set(), {d["_id"]: d for d in sums})
        # only the texts holding every part (the store looks, without handing every text over)
        for doc in await self.search.find({**month, "$and": [{"text": {"$regex": re.escape(p)}} for p in parts]}):
            if not doc["text"]:  # a bucket none of whose lines is listed
                continue
            every = doc["text"].split("\n")
            rows = every
            for p in parts:  # rows holding every part somewhere first (in C), then each part in its field
                rows = [row for row in rows if p in row]
            numbers = []
            for row in rows:
                n, name, kana = row.split("\t")
                if ((number is None or n == number) and in_number in n and (in_name in name or in_name in kana)
                        and (anywhere in n or anywhere in name or anywhere in kana)):
                    numbers.append(n)
            if numbers:
                found.numbers += numbers
                found.buckets[doc["_id"]] = numbers
                if len(numbers) == len(every):
                    found.whole.add(doc["_id"])
        found.numbers.sort()
        return found

    async def _found(self, agency_id: str, month: BillingMonth, found: _Matches, skip: int, per_page: int,
                     with_totals: bool) -> tuple[list[dict[str, Any]], int] | tuple[
                         list[dict[str, Any]], int, dict[str, str]]:
        """A page of the lines a search found, their count, and their totals from the totals buckets: a bucket
        whose lines all matched adds its sums, the others the entries of the lines that matched."""
        from ppa_billing.invoice_list import line_id, sum_lines

        numbers = found.numbers
        wanted = [line_id(agency_id, str(month), n) for n in (numbers[skip:skip + per_page] if per_page
                                                                else numbers[skip:])]
        lines = await self.lines.get_many(wanted)  # a line and its search row are written together
        items = await self._line_items(agency_id, month, [lines[i] for i in wanted if i in lines])
        if not with_totals:
            return items, len(numbers)
        # a whole bucket adds its sums (unless they are not written yet: on MongoDB a bucket's text, totals and
        # sums are written side by side), the others their matched lines' entries
        summed_whole = found.whole & set(found.sums)
        partial = [bid for bid in found.buckets if bid not in summed_whole]
        entries = await self.buckets.get_many(partial) if partial else {}
        figures = [dict(zip(TOTAL_FIELDS, entry)) for bid in partial
                   for n in found.buckets[bid]
                   if (entry := entries.get(bid, {"entries": {}})["entries"].get(n)) is not None]  # None: voided
        matched = sum_lines(figures)
        return items, len(numbers), _add_sums([found.sums[bid] for bid in summed_whole] + [
            {"sums": matched, "count": matched["count"]}])

    async def _line_items(self, agency_id: str, month: BillingMonth,
                          lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The list's items: the issued invoice where there is one (read as issued now), else the draft."""
        numbers = {line["customer_number"]: invoice_number(month, line["customer_number"]) for line in lines}
        issued = await self.issued.get_many([f"{agency_id}:{n}" for n in numbers.values()]) if lines else {}
        out = []
        for line in lines:
            doc = issued.get(f"{agency_id}:{numbers[line['customer_number']]}")
            if doc is not None:
                out.append(self._issued_public(doc, False))
            elif line.get("draft") is not None:
                out.append(line["draft"])
        return out

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

    async def draft(self, agency_id: str, customer: dict[str, Any], month: BillingMonth) -> dict[str, Any]:
        """The invoice the customer's month would be if issued now (current prices and settings)."""
        return (await self._drafts(agency_id, [customer], month, with_daily=False))[0]

    async def of_customer(self, agency_id: str, customer_number: str, month: BillingMonth | None = None,
                          number: str = "") -> list[dict[str, Any]]:
        """A customer's invoices, newest month first: months with usage or an issued invoice."""
        customer = await self.customers.get(f"{agency_id}:{customer_number}")
        if customer is None:
            raise InvoiceNotFound(customer_number)
        settings = await self.settings.get(agency_id)
        lines = await customer_lines(self.lines, self.months_of, agency_id, [customer_number])
        issued = {d["month"]: d for d in await self.issued.find({"agency_id": agency_id,
                                                                 "customer_number": customer_number})}
        # every month the list has a line for (one without days too: the base fee, 計測データなし)
        months = {BillingMonth.parse(line["month"]) for line in lines if line.get("listed")}
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


def _add_sums(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The month's totals row from its buckets' sums."""
    return {k: str(sum((Decimal(d["sums"][k]) for d in docs), Decimal(0))) for k in TOTAL_FIELDS} | {
        "count": str(sum(int(d["count"]) for d in docs))}
