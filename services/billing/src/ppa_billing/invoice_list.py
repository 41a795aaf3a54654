"""The month's invoice list as a projection: one line per customer and billing month (its days, the draft
computed from them, the issued figures if any), and, in buckets of 1,000 customers, the month's totals and the
search entries (numbers, names and kana) a text search reads instead of every line.

The lines are billing's only copy of the daily usage: invoice details, issuing and revisions read their days
(`Invoices.versioned_days`), so the list, the details and the issued documents work from the same days.

One consumer group writes all of it (single writer: FerretDB loses concurrent conditional updates). It reads
daily usage, customers, settings and invoice events; each handler recomputes what it touched from the
line's own days and the current customer and settings, so redelivery and any order of topics end the same.
A closing-day change re-files every day of the agency into the months of the new setting.

A customer's lines are found through `invoice_line_months` (per customer, the months it has lines in), then read
by `_id`: a query on the lines by customer would scan them all on a MongoDB-protocol server that serves only
`_id` from an index (FerretDB 1.24), once per customer edit and per 請求一覧 view. The months are written before
the lines they name, so a crash in between leaves a month without its line (skipped), never a line unlisted.

The group may run as shards (`PPA_CONSUMER_SHARDS=billing.invoice-list=N`), split by the last digit of the
totals bucket (the customer number's 7th digit, the 4th from the end of an invoice number too): a customer's
lines and its bucket's documents still have one writer, and a settings change is re-filed by every shard for
its own customers and buckets.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ppa_billing.agency_settings import AgencySettings
from ppa_billing.customers import Customers
from ppa_billing.domain.billing_month import BillingMonth, InvalidBillingMonth, month_of
from ppa_billing.domain.invoice_months import invoice_months
from ppa_billing.domain.settings import BillingSettings
from ppa_contracts import Envelope, Payload
from ppa_contracts.billing import (
    REISSUED_AFTER_VOID,
    AuthCodeReissued,
    BillingSettingsChanged,
    CustomerChanged,
    CustomerDeleted,
    CustomerRegistered,
    InvoiceIssued,
    InvoiceRevised,
    InvoiceVoided,
)
from ppa_contracts.metering import DailyUsageComputed, DailyUsageRevised
from ppa_contracts.topics import BILLING_CUSTOMER, BILLING_INVOICE, BILLING_SETTINGS, METERING_DAILY_USAGE
from ppa_runtime.bus import Record
from ppa_runtime.consumer import ConsumerSpec, current_shard
from ppa_runtime.docstore import Collection, DocStore

LINES = "invoice_lines"
SEARCH = "invoice_line_search"  # per totals bucket: one text of its listed lines' numbers, names and kana
BUCKETS = "invoice_line_buckets"
SUMS = "invoice_month_sums"
MONTHS_OF = "invoice_line_months"  # per customer (`agency:number`): the months it has lines in
INDEXED = "~indexed"  # marks that every line written before the months existed is in them (no customer id spells it)
TOTAL_FIELDS = ("base_fee", "generation_kwh", "sold_kwh", "usage_kwh", "sell_fee", "usage_fee", "total")
ZERO2 = Decimal("0.00")
CENTI = Decimal("0.01")
REFILE_PAGE = 2000
OPEN_PAGE = 2000  # customers a month opening reads and completes at a time
OPENED = "~opened"  # in MONTHS_OF, per shard: the JST day the month opening last went over every customer
TOKYO = ZoneInfo("Asia/Tokyo")
_COMPUTED = DailyUsageComputed.event_type()
_DAILY_TYPES = frozenset({_COMPUTED, DailyUsageRevised.event_type()})
_CUSTOMER_TYPES = frozenset(cls.event_type() for cls in (CustomerRegistered, CustomerChanged, CustomerDeleted,
                                                          AuthCodeReissued))
# what the batch handler reads of each record: the type, and of daily usage its day and figures (the computed
# values, or a revision's new ones) and version
DAILY_FIELDS = ("$.type", "$.data.agency_id", "$.data.customer_number", "$.data.date",
                "$.data.values.generation_kwh", "$.data.values.sold_kwh", "$.data.new.generation_kwh",
                "$.data.new.sold_kwh", "$.aggregateversion")
DaysChanged = Callable[[str, dict[str, set[str]]], Awaitable[None]]  # agency, customer number → ISO dates
# shards split these topics' records by the digit 4th from the end of their subject (a customer number, or an
# invoice number that ends with one): the last digit of the customer's totals bucket
SPLIT_BY = (frozenset({METERING_DAILY_USAGE, BILLING_CUSTOMER, BILLING_INVOICE}), -4)


def today_in_japan() -> date:
    return datetime.now(TOKYO).date()


def bucket_of(customer_number: str) -> str:
    """Totals are kept per 1,000 customer numbers (`11` + 8 digits → the first 7 digits)."""
    return customer_number[:7]


def line_id(agency_id: str, month: str, customer_number: str) -> str:
    return f"{agency_id}:{month}:{customer_number}"


async def customer_lines(lines: Collection, months_of: Collection, agency_id: str, numbers: list[str],
                         first: str = "", last: str = "9999/99") -> list[dict[str, Any]]:
    """The lines of these customers of an agency in the billing months first..last ("YYYY/MM"), by `_id`."""
    found = await months_of.get_many([f"{agency_id}:{n}" for n in numbers])
    ids = [line_id(agency_id, m, n) for n in numbers for m in found.get(f"{agency_id}:{n}", {}).get("months", ())
           if first <= m <= last]
    stored = await lines.get_many(ids) if ids else {}
    return [stored[i] for i in ids if i in stored]


def search_row(line: dict[str, Any]) -> str:
    """A listed line's row in its bucket's search text: number, name and kana, lower case, tab-separated."""
    return "\t".join((line["customer_number"], searchable(line["name"]), searchable(line["name_kana"])))


def searchable(text: str) -> str:
    """Text as the search compares it: lower case, no tabs or line breaks (the search text's separators)."""
    return text.lower().replace("\t", " ").replace("\n", " ").replace("\r", " ")


def search_rows(doc: dict[str, Any]) -> dict[str, str]:
    """A search document's rows by customer number (its text: one row a line, in customer number order)."""
    return {row[:row.index("\t")]: row for row in doc["text"].split("\n")} if doc["text"] else {}


def current_figures(line: dict[str, Any]) -> dict[str, Any] | None:
    """What the line adds to the month's totals: the issued figures, else the draft; None when voided."""
    issued = line.get("issued")
    if issued:
        return None if issued["status"] == "voided" else issued["figures"]
    return line.get("draft")


def sum_lines(figures: list[dict[str, Any]]) -> dict[str, str]:
    """The totals row of a list of figures (each a dict of TOTAL_FIELDS)."""
    return {k: str(sum((Decimal(f[k]) for f in figures), Decimal(0))) for k in TOTAL_FIELDS} | {
        "count": str(len(figures))}


class InvoiceList:
    """Maintains `invoice_lines`, `invoice_line_search`, `invoice_line_buckets` and `invoice_month_sums`."""

    def __init__(self, docs: DocStore, customers: Customers, settings: AgencySettings) -> None:
        self.lines = docs.collection(LINES)
        self.search = docs.collection(SEARCH)
        self.buckets = docs.collection(BUCKETS)
        self.sums = docs.collection(SUMS)
        self.months_of = docs.collection(MONTHS_OF)
        self.customers = customers
        self.settings = settings
        # issuing: days of an agency's customers changed (a change after issue makes a revision)
        self.on_days_changed: DaysChanged | None = None
        self.today: Callable[[], date] = today_in_japan  # the JST day whose billing month is the current one
        self._opened: dict[str, date] = {}  # per shard: the day the month opening last went over every customer

    async def setup(self) -> None:
        await self.lines.ensure_index("agency_id", "month", "listed", "customer_number")
        await self.lines.ensure_index("agency_id", "customer_number", "month")
        await self.search.ensure_index("agency_id", "month")
        await self.sums.ensure_index("agency_id", "month")
        await self._index_existing()

    async def _index_existing(self) -> None:
        """Lines written before `invoice_line_months` existed get their months, once per install."""
        if await self.months_of.get(INDEXED) is not None:
            return
        months: dict[tuple[str, str], set[str]] = defaultdict(set)
        for line in await self.lines.find({}, without=("days", "draft", "issued")):
            months[(line["agency_id"], line["customer_number"])].add(line["month"])
        await self._add_months(months)
        await self.months_of.replace({"_id": INDEXED})

    async def _add_months(self, months: dict[tuple[str, str], set[str]]) -> None:
        """Put these months into their customers' month lists (before the lines are written)."""
        if not months:
            return
        found = await self.months_of.get_many([f"{a}:{n}" for a, n in months])
        out = []
        for (agency_id, number), new in months.items():
            have = set(found.get(f"{agency_id}:{number}", {}).get("months", ()))
            if not new <= have:
                out.append({"_id": f"{agency_id}:{number}", "agency_id": agency_id, "customer_number": number,
                            "months": sorted(have | new)})
        if out:
            await self.months_of.replace_many(out)

    # computing lines
    @staticmethod
    def _draft(customer: dict[str, Any] | None, month: BillingMonth, settings: BillingSettings,
               days: dict[str, list[str]]) -> dict[str, Any] | None:
        from ppa_billing.invoices import draft_of

        if customer is None:
            return None
        return draft_of(customer, month, settings.closing_day, days, settings.rounding, settings.tax_rate_percent)

    def _refresh(self, line: dict[str, Any], customer: dict[str, Any] | None, settings: BillingSettings) -> None:
        """Recompute a line's draft, search fields and whether it is listed (in place)."""
        month = BillingMonth.parse(line["month"])
        line["draft"] = self._draft(customer, month, settings, line.get("days", {}))
        issued = line.get("issued")
        line["name"] = customer["name"] if customer else (issued["figures"]["name"] if issued else "")
        line["name_kana"] = customer.get("name_kana", "") if customer else ""
        line["listed"] = bool(line["draft"] is not None or issued)

    @staticmethod
    def _new_line(agency_id: str, month: str, customer_number: str, closing: Any) -> dict[str, Any]:
        return {"_id": line_id(agency_id, month, customer_number), "agency_id": agency_id, "month": month,
                "customer_number": customer_number, "bucket": bucket_of(customer_number), "closing": closing,
                "days": {}, "issued": None, "draft": None, "name": "", "name_kana": "", "listed": False}

    async def _save(self, lines: list[dict[str, Any]],
                    created: dict[tuple[str, str], set[str]] | None = None) -> None:
        """Store lines and their entries in the totals and search buckets (all idempotent), in one go: on
        SQLite the four writes share one transaction (one fsync), on MongoDB they run side by side. `created`:
        the months of new lines, put into their customers' month lists first (while the buckets are read)."""
        entries, _ = await asyncio.gather(self._entries(lines), self._add_months(created or {}))
        await asyncio.gather(self.lines.replace_many(lines), *self._entry_writes(*entries))

    def _entry_writes(self, buckets: list[dict[str, Any]], sums: list[dict[str, Any]],
                      search: list[dict[str, Any]]) -> list[Awaitable[None]]:
        return [self.buckets.replace_many(buckets), self.sums.replace_many(sums), self.search.replace_many(search)]

    async def _entries(self, lines: list[dict[str, Any]], fresh: bool = False) -> tuple[
            list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """The totals buckets with these lines' entries set, the buckets' sums and their search entries (to be
        stored); `fresh`: the buckets are new (nothing stored to start from)."""
        by_bucket: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in lines:
            by_bucket[f"{line['agency_id']}:{line['month']}:{line['bucket']}"].append(line)
        ids = list(by_bucket)
        existing, found = ({}, {}) if fresh else await asyncio.gather(self.buckets.get_many(ids),
                                                                      self.search.get_many(ids))
        buckets, sums, search = [], [], []
        for bid, members in by_bucket.items():
            first = members[0]
            doc = existing.get(bid) or {"_id": bid, "agency_id": first["agency_id"], "month": first["month"],
                                        "entries": {}}
            stored = found.get(bid)
            rows = search_rows(stored) if stored else {} if bid not in existing else await self._rows_of(first)
            for line in members:
                number = line["customer_number"]
                if not line["listed"]:
                    doc["entries"].pop(number, None)
                    rows.pop(number, None)
                    continue
                figures = current_figures(line)  # None: listed, but voided (not in the totals)
                doc["entries"][number] = None if figures is None else [figures[k] for k in TOTAL_FIELDS]
                rows[number] = search_row(line)
            buckets.append(doc)
            search.append({"_id": bid, "agency_id": first["agency_id"], "month": first["month"],
                           "text": "\n".join(rows[n] for n in sorted(rows))})
            values = [v for v in doc["entries"].values() if v is not None]
            sums.append({"_id": bid, "agency_id": doc["agency_id"], "month": doc["month"],
                         "sums": {k: str(sum((Decimal(v[i]) for v in values), Decimal(0)))
                                  for i, k in enumerate(TOTAL_FIELDS)}, "count": len(values),
                         "listed": len(doc["entries"])})
        return buckets, sums, search

    async def _rows_of(self, line: dict[str, Any]) -> dict[str, str]:
        """The search rows of the listed lines in a line's bucket, read from the lines: for a bucket whose
        totals were written before the search text existed (then once)."""
        bucket = line["bucket"]
        listed = await self.lines.find({"agency_id": line["agency_id"], "month": line["month"], "listed": True,
                                        "customer_number": {"$gte": f"{bucket}000", "$lte": f"{bucket}999"}},
                                       without=("days",))
        return {other["customer_number"]: search_row(other) for other in listed}

    # daily usage
    async def on_daily_batch(self, events: list[tuple[str, str, str, Decimal | str, Decimal | str, int]]) -> None:
        """Merge days (agency, customer, ISO date, generation, sold, version) into their lines, newer versions
        only, recompute every line touched, then have issued invoices holding one of the days reconciled.

        Its I/O comes in waves of point reads sent side by side (on a MongoDB-protocol server each is a round
        trip: the settings with the customers, then the lines; then the months of new lines with the totals
        buckets), then one bulk write per collection."""
        agencies = list({e[0] for e in events})
        found, customers = await asyncio.gather(
            asyncio.gather(*(self.settings.get(a) for a in agencies)),
            self.customers.coll.get_many(list({f"{e[0]}:{e[1]}" for e in events})))
        settings: dict[str, BillingSettings] = dict(zip(agencies, found, strict=True))
        months: dict[tuple[str, Any], str | None] = {}
        incoming: dict[str, dict[str, tuple[Decimal | str, Decimal | str, int]]] = {}
        keys: dict[str, tuple[str, str, str]] = {}
        for agency_id, number, iso, generation, sold_kwh, version in events:
            key = (iso, settings[agency_id].closing_day)
            if key not in months:
                try:
                    months[key] = str(month_of(date.fromisoformat(iso), key[1]))
                except InvalidBillingMonth:
                    months[key] = None
            month = months[key]
            if month is None:
                continue
            lid = line_id(agency_id, month, number)
            days = incoming.get(lid)
            if days is None:
                days = incoming[lid] = {}
                keys[lid] = (agency_id, month, number)
            known = days.get(iso)
            if known is None or version > known[2]:
                days[iso] = (generation, sold_kwh, version)
        if not incoming:
            return
        stored = await self.lines.get_many(list(incoming))
        out = []
        created: dict[tuple[str, str], set[str]] = defaultdict(set)
        touched: dict[str, dict[str, set[str]]] = defaultdict(dict)
        for lid, days in incoming.items():
            agency_id, month, number = keys[lid]
            line = stored.get(lid)
            if line is None:
                line = self._new_line(agency_id, month, number, settings[agency_id].closing_day)
                created[(agency_id, number)].add(month)
            kept = line["days"]
            for iso, (generation, sold_kwh, version) in days.items():
                old = kept.get(iso)
                if old is None or version > old[3]:
                    # the 2-decimal kWh people see, half up like every other kWh (a printed invoice adds up by hand)
                    gen = Decimal(generation).quantize(CENTI, ROUND_HALF_UP)
                    sold = Decimal(sold_kwh).quantize(CENTI, ROUND_HALF_UP)
                    kept[iso] = [str(gen), str(sold), str(max(gen - sold, ZERO2)), version]
            self._refresh(line, customers.get(f"{agency_id}:{number}"), settings[agency_id])
            out.append(line)
            touched[agency_id].setdefault(number, set()).update(days)
        await self._save(out, created)
        await self._fill(created)
        # Always, not only when a day changed: a crash after the save must still revise on redelivery.
        if self.on_days_changed is not None:
            for agency_id, days_of in touched.items():
                await self.on_days_changed(agency_id, days_of)

    # customers and settings
    async def recompute_customer(self, agency_id: str, customer_number: str) -> None:
        """Recompute every line of a customer with the current customer and settings, and add its missing months."""
        await self.recompute_customers(agency_id, [customer_number])

    async def recompute_customers(self, agency_id: str, numbers: list[str]) -> None:
        """`recompute_customer` for customers of one agency at once (a batch of customer events)."""
        settings = await self.settings.get(agency_id)
        keys = [f"{agency_id}:{n}" for n in numbers]
        customers, found = await asyncio.gather(self.customers.coll.get_many(keys), self.months_of.get_many(keys))
        wanted = {n: self._months_of(customers.get(k), found.get(k, {}).get("months", ()), settings)
                  for n, k in zip(numbers, keys)}
        ids = {line_id(agency_id, m, n) for n, k in zip(numbers, keys)
               for m in (*found.get(k, {}).get("months", ()), *wanted[n])}
        stored = await self.lines.get_many(sorted(ids)) if ids else {}
        lines = list(stored.values())
        created: dict[tuple[str, str], set[str]] = defaultdict(set)
        for number, months in wanted.items():
            for month in months:
                if line_id(agency_id, month, number) not in stored:
                    lines.append(self._new_line(agency_id, month, number, settings.closing_day))
                    created[(agency_id, number)].add(month)
        if not lines:
            return
        for line in lines:
            self._refresh(line, customers.get(f"{agency_id}:{line['customer_number']}"), settings)
        await self._add_months(created)
        await self._save(lines)

    def _months_of(self, customer: dict[str, Any] | None, listed: Any, settings: BillingSettings) -> list[str]:
        """The billing months a live customer has an invoice for today (none when deleted: it gets no new ones)."""
        if customer is None:
            return []
        start, registered = customer.get("contract_start"), customer.get("registered_at")
        months = invoice_months(date.fromisoformat(start) if start else None,
                                BillingMonth.parse(min(listed)) if listed else None,
                                datetime.fromisoformat(registered).astimezone(TOKYO).date() if registered else None,
                                self.today(), settings.closing_day)
        return [str(m) for m in months]

    async def _fill(self, created: dict[tuple[str, str], set[str]]) -> None:
        """The months up to now of customers that got a new line (a day before their first month opens the
        months between it and that one)."""
        by_agency: dict[str, list[str]] = defaultdict(list)
        for agency_id, number in created:
            by_agency[agency_id].append(f"{agency_id}:{number}")
        for agency_id, keys in by_agency.items():
            docs = await self.customers.coll.get_many(keys)
            live = await self.customers._live(list(docs.values()))
            if live:
                await self._open(agency_id, live)

    async def open_months(self) -> None:
        """Once a JST day (and when the group starts): give every live customer (of this shard) its lines for the
        months it has none in yet, the new current month above all, so a customer that sends nothing still has
        its month. Idempotent: a line is only created where none is; a crash midway is completed by the next
        pass. Reads the customers by `_id`, OPEN_PAGE at a time, and their months and lines by `_id`."""
        shard = current_shard()
        key = OPENED if shard is None else f"{OPENED}:{shard.index}of{shard.count}"
        today = self.today()
        if self._opened.get(key) == today:
            return
        done = await self.months_of.get(key)
        if done is None or done.get("day") != today.isoformat():
            after = ""
            while True:
                page = await self.customers.coll.find({"_id": {"$gt": after}}, sort=[("_id", 1)], limit=OPEN_PAGE)
                if not page:
                    break
                after = page[-1]["_id"]
                by_agency: dict[str, list[dict[str, Any]]] = defaultdict(list)
                for doc in await self.customers._live(page):
                    if shard is None or shard.of(doc["customer_number"]) == shard.index:
                        by_agency[doc["agency_id"]].append(doc)
                for agency_id, docs in by_agency.items():
                    await self._open(agency_id, docs)
            await self.months_of.replace({"_id": key, "day": today.isoformat()})
        self._opened[key] = today

    async def _open(self, agency_id: str, docs: list[dict[str, Any]], every_month: bool = False) -> None:
        """Create the missing lines of these live customers of an agency (existing lines stay as they are):
        of the months not in their month lists and the current month, or with `every_month` of every month
        they have an invoice for (after a refile, which deletes lines their lists still name)."""
        settings = await self.settings.get(agency_id)
        found = await self.months_of.get_many([d["_id"] for d in docs])
        wanted: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for doc in docs:
            listed = found.get(doc["_id"], {}).get("months", ())
            months = self._months_of(doc, listed, settings)
            # unlisted months, and the current one (listed before a crash kept its line from being written)
            todo = months if every_month else [m for m in months if m not in listed] + months[-1:]
            if todo:
                wanted[doc["customer_number"]] = (doc, todo)
        ids = [line_id(agency_id, m, n) for n, (_, todo) in wanted.items() for m in todo]
        stored = await self.lines.get_many(ids) if ids else {}
        lines: list[dict[str, Any]] = []
        created: dict[tuple[str, str], set[str]] = defaultdict(set)
        for number, (doc, todo) in wanted.items():
            for month in dict.fromkeys(todo):
                if line_id(agency_id, month, number) not in stored:
                    line = self._new_line(agency_id, month, number, settings.closing_day)
                    self._refresh(line, doc, settings)
                    lines.append(line)
                    created[(agency_id, number)].add(month)
        if lines:
            await self._add_months(created)
            await self._save(lines)

    async def refile_agency(self, agency_id: str) -> None:
        """File every day of the agency again under the current settings and rebuild its totals (of a shard:
        its own customers' days and buckets)."""
        shard = current_shard()
        settings = await self.settings.get(agency_id)
        after = ""
        entries: list[dict[str, Any]] = []
        old_months: set[str] = set()
        while True:
            page = await self.lines.find({"agency_id": agency_id, "customer_number": {"$gt": after}},
                                         sort=[("customer_number", 1)], limit=REFILE_PAGE)
            if not page:
                break
            if len(page) == REFILE_PAGE and page[0]["customer_number"] != page[-1]["customer_number"]:
                last = page[-1]["customer_number"]
                page = [line for line in page if line["customer_number"] != last]  # whole customers only
            by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for line in page:
                if shard is None or shard.of(line["customer_number"]) == shard.index:
                    by_customer[line["customer_number"]].append(line)
                    old_months.add(line["month"])
            customers = await self.customers.coll.get_many([f"{agency_id}:{n}" for n in by_customer])
            new_lines, gone = [], []
            for number, lines in by_customer.items():
                refiled = self._refiled(agency_id, number, lines, settings)
                for line in refiled.values():
                    self._refresh(line, customers.get(f"{agency_id}:{number}"), settings)
                new_lines += refiled.values()
                gone += [line["_id"] for line in lines if line["_id"] not in refiled]
            created: dict[tuple[str, str], set[str]] = defaultdict(set)
            for line in new_lines:
                created[(agency_id, line["customer_number"])].add(line["month"])
            # the lists become the refiled months (union first, so a crash never leaves a line unlisted): the
            # months only the deleted lines had would pass for metered months when the months are opened again
            await self._add_months(created)
            await self.lines.replace_many(new_lines)
            await self.months_of.replace_many([
                {"_id": f"{agency_id}:{number}", "agency_id": agency_id, "customer_number": number,
                 "months": sorted(created.get((agency_id, number), ()))} for number in by_customer])
            if gone:
                await self.lines.delete({"_id": {"$in": gone}})
            entries += [{k: line[k] for k in ("agency_id", "month", "bucket", "customer_number", "listed", "issued",
                                              "draft", "name", "name_kana")} for line in new_lines]
            after = page[-1]["customer_number"]
        for coll, heavy in ((self.buckets, "entries"), (self.sums, "sums"), (self.search, "text")):
            if shard is None:
                await coll.delete({"agency_id": agency_id})
                continue
            ids = [doc["_id"] for doc in await coll.find({"agency_id": agency_id}, without=(heavy,))
                   if shard.of(doc["_id"].rsplit(":", 1)[1] + "000") == shard.index]  # the bucket's numbers' shard
            if ids:
                await coll.delete({"_id": {"$in": ids}})
        await asyncio.gather(*self._entry_writes(*await self._entries(entries, fresh=True)))
        await self._open_agency(agency_id)

    async def _open_agency(self, agency_id: str) -> None:
        """Every month line of the agency's live customers (of this shard), after a refile deleted the lines
        without days (their months move with the closing day)."""
        shard = current_shard()
        after = f"{agency_id}:"
        while True:
            page = await self.customers.coll.find({"_id": {"$gt": after, "$lt": f"{agency_id};"}},
                                                  sort=[("_id", 1)], limit=OPEN_PAGE)
            if not page:
                return
            after = page[-1]["_id"]
            mine = [d for d in await self.customers._live(page)
                    if shard is None or shard.of(d["customer_number"]) == shard.index]
            if mine:
                await self._open(agency_id, mine, every_month=True)

    def _refiled(self, agency_id: str, number: str, lines: list[dict[str, Any]],
                 settings: BillingSettings) -> dict[str, dict[str, Any]]:
        days: dict[str, list] = {}
        out: dict[str, dict[str, Any]] = {}
        for line in lines:
            for day, values in line.get("days", {}).items():
                if day not in days or values[3] > days[day][3]:
                    days[day] = values
            if line.get("issued"):
                kept = self._new_line(agency_id, line["month"], number, settings.closing_day)
                kept["issued"] = line["issued"]
                out[kept["_id"]] = kept
        for day, values in days.items():
            try:
                month = str(month_of(date.fromisoformat(day), settings.closing_day))
            except InvalidBillingMonth:
                continue
            lid = line_id(agency_id, month, number)
            line = out.setdefault(lid, self._new_line(agency_id, month, number, settings.closing_day))
            line["days"][day] = values
        return out

    # invoices
    async def on_invoice(self, event: InvoiceIssued | InvoiceRevised | InvoiceVoided, version: int) -> None:
        """Keep the issued figures (or the void) on the invoice's line, once per stream version."""
        lid = line_id(event.agency_id, event.month, event.customer_number)
        settings = await self.settings.get(event.agency_id)
        line = await self.lines.get(lid)
        if line is None:
            line = self._new_line(event.agency_id, event.month, event.customer_number, settings.closing_day)
            await self._add_months({(event.agency_id, event.customer_number): {event.month}})
        issued = line.get("issued") or {"v": 0, "status": "issued", "figures": None}
        if version <= issued["v"]:
            return await self._save([line])  # a repeat: the line is already right; its entry is set again
        if isinstance(event, InvoiceVoided):
            issued = {**issued, "status": "voided", "v": version}
        else:
            data = event.figures.model_dump(mode="json")
            reissued = isinstance(event, InvoiceRevised) and event.reason == REISSUED_AFTER_VOID
            issued = {"v": version, "status": "voided" if issued["status"] == "voided" and not reissued else "issued",
                      "figures": {k: data[k] for k in ("name", *TOTAL_FIELDS)}}
        if issued["figures"] is None:  # a void seen before its issue: the issue event fills the figures
            issued["figures"] = {"name": "", **{k: "0" for k in TOTAL_FIELDS}}
        line["issued"] = issued
        customer = await self.customers.coll.get(f"{event.agency_id}:{event.customer_number}")
        self._refresh(line, customer, settings)
        await self._save([line])

    # the consumer
    async def _on_batch(self, records: list[Record]) -> None:
        # Daily usage is taken from the few values picked from each record (the embedded log reads them in SQLite;
        # the envelope is neither decoded nor validated): anything malformed raises here, and the consumer then
        # applies each record through `handlers`, which validate it.
        daily: list[tuple[str, str, str, str, str, int]] = []
        # a run of customer events, applied together, then their customers (by agency) recomputed together
        applying: list[tuple[Payload, int, datetime]] = []
        customers: dict[str, dict[str, None]] = defaultdict(dict)

        async def flush() -> None:
            if daily:
                await self.on_daily_batch(daily)
                daily.clear()
            if applying:
                await self.customers.apply_many(applying)
                applying.clear()
            for agency_id, numbers in customers.items():
                await self.recompute_customers(agency_id, list(numbers))
            customers.clear()

        for record in records:
            kind, agency_id, number, day, generation, sold, new_generation, new_sold, version = record.pick(
                DAILY_FIELDS)
            if kind in _DAILY_TYPES:
                if customers:
                    await flush()
                if kind != _COMPUTED:
                    generation, sold = new_generation, new_sold
                if not (type(agency_id) is type(number) is type(generation) is type(sold) is str):
                    raise ValueError(f"daily usage at offset {record.offset} is not as its model says")
                daily.append((agency_id, number, date.fromisoformat(day).isoformat(), generation, sold,
                              int(version or 0)))
            elif kind in _CUSTOMER_TYPES:
                if daily:
                    await flush()
                env = record.envelope
                event = env.payload()
                applying.append((event, env.aggregateversion or 0, env.time))
                customers[event.agency_id][event.customer_number] = None
            else:
                if type(kind) is not str:
                    raise ValueError(f"the record at offset {record.offset} has no event type")
                await flush()
                handler = self._handlers().get(kind)
                if handler is not None:
                    env = record.envelope
                    await handler(env.payload(), env)
        await flush()

    async def _on_daily(self, event: DailyUsageComputed | DailyUsageRevised, env: Envelope) -> None:
        values = event.values if isinstance(event, DailyUsageComputed) else event.new
        await self.on_daily_batch([(event.agency_id, event.customer_number, event.date.isoformat(),
                                    values.generation_kwh, values.sold_kwh, env.aggregateversion or 0)])

    async def _on_customer(self, event: Payload, env: Envelope) -> None:
        await self.customers.apply(event, env.aggregateversion or 0, env.time)  # idempotent: maybe applied already
        await self.recompute_customer(event.agency_id, event.customer_number)

    async def _on_settings(self, event: BillingSettingsChanged, env: Envelope) -> None:
        await self.settings.apply(event, env.aggregateversion or 0)
        await self.refile_agency(event.agency_id)

    async def _on_invoice(self, event: Payload, env: Envelope) -> None:
        await self.on_invoice(event, env.aggregateversion or 0)

    def _handlers(self) -> dict[str, Any]:
        return {
            DailyUsageComputed.event_type(): self._on_daily, DailyUsageRevised.event_type(): self._on_daily,
            **{cls.event_type(): self._on_customer
               for cls in (CustomerRegistered, CustomerChanged, CustomerDeleted, AuthCodeReissued)},
            BillingSettingsChanged.event_type(): self._on_settings,
            **{cls.event_type(): self._on_invoice for cls in (InvoiceIssued, InvoiceRevised, InvoiceVoided)},
        }

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            group="billing.invoice-list", name=LINES,
            topics=[METERING_DAILY_USAGE, BILLING_CUSTOMER, BILLING_SETTINGS, BILLING_INVOICE],
            collections=[LINES, SEARCH, BUCKETS, SUMS, MONTHS_OF], setup=self.setup, dedupe=False, batch_size=5000,
            handlers=self._handlers(), on_batch=self._on_batch, fields=DAILY_FIELDS, picked_only=_DAILY_TYPES,
            split_by=SPLIT_BY, on_tick=self.open_months)
