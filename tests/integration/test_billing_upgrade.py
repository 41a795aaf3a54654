"""Billing started over data an earlier version left behind drops what nothing reads any more."""

from __future__ import annotations

import re

from ppa_billing.invoice_list import LINES
from ppa_billing.service import RETIRED_LINE_NAMES, RETIRED_USAGE_DAYS, BillingService


async def index_fields(coll) -> list[tuple[str, ...]]:
    """The fields of each secondary index of a collection, as its backend reports them."""
    if hasattr(coll, "coll"):  # MongoDB protocol
        info = await coll.coll.index_information()
        return [tuple(field for field, _ in spec["key"]) for name, spec in info.items() if name != "_id_"]
    rows = await coll.db.read(lambda c: c.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        (coll.table,)).fetchall())
    return [tuple(re.findall(r"'\$\.([A-Za-z_.]+)'", sql)) for (sql,) in rows]


async def test_the_retired_daily_usage_copy_line_names_and_index_are_dropped_and_the_rest_kept(runtime):
    docs = runtime.docstore("billing")
    retired = docs.collection(RETIRED_USAGE_DAYS)
    await retired.insert_many([{"_id": f"agency-1:11000000{i:02d}:2024-01-16", "agency_id": "agency-1",
                                "customer_number": f"11000000{i:02d}", "date": "2024-01-16",
                                "generation_kwh": "12.34", "sold_kwh": "5.00", "version": 1} for i in range(5)])
    names = docs.collection(RETIRED_LINE_NAMES)  # one search entry per line, before the search buckets
    await names.insert({"_id": "agency-1:2024/01:1100000001", "agency_id": "agency-1", "month": "2024/01",
                        "customer_number": "1100000001", "name": "顧客", "name_kana": "", "listed": True})
    lines = docs.collection(LINES)
    await lines.ensure_index("agency_id", "customer_number")
    line = {"_id": "agency-1:2024/01:1100000001", "agency_id": "agency-1", "month": "2024/01",
            "customer_number": "1100000001", "days": {}, "listed": False}
    await lines.insert(line)
    assert ("agency_id", "customer_number") in await index_fields(lines)

    await BillingService(runtime).start()
    assert await retired.count() == 0 and await names.count() == 0
    fields = await index_fields(lines)
    assert ("agency_id", "customer_number") not in fields
    assert ("agency_id", "customer_number", "month") in fields and ("agency_id", "month", "listed",
                                                                    "customer_number") in fields
    assert await lines.get(line["_id"]) == line  # the month list itself is untouched

    await BillingService(runtime).start()  # started again: nothing left to drop, nothing fails
    assert await lines.count() == 1


async def test_lines_from_before_the_months_per_customer_are_found_by_customer_after_start(runtime):
    """A customer's lines are read by `_id` through its months (no query over the lines): lines an earlier version
    wrote get their months at the first start, and a later line adds its month."""
    from ppa_billing.invoice_list import MONTHS_OF, customer_lines

    docs = runtime.docstore("billing")
    lines, months_of = docs.collection(LINES), docs.collection(MONTHS_OF)
    old = [{"_id": f"agency-1:{m}:1100000001", "agency_id": "agency-1", "month": m,
            "customer_number": "1100000001", "days": {}, "listed": False} for m in ("2024/01", "2024/03")]
    other = {"_id": "agency-1:2024/01:1100000002", "agency_id": "agency-1", "month": "2024/01",
             "customer_number": "1100000002", "days": {}, "listed": False}
    await lines.insert_many([*old, other])
    assert await customer_lines(lines, months_of, "agency-1", ["1100000001"]) == []  # not yet indexed

    service = BillingService(runtime)
    await service.start()
    assert await customer_lines(lines, months_of, "agency-1", ["1100000001"]) == old
    assert await customer_lines(lines, months_of, "agency-1", ["1100000001", "1100000002"], "2024/01",
                                "2024/02") == [old[0], other]
    assert await customer_lines(lines, months_of, "agency-2", ["1100000001"]) == []  # another agency's: none
    # a line the month list creates later is found too
    await service.invoice_list.on_daily_batch([("agency-1", "1100000001", "2024-05-10", "3.00", "1.00", 1)])
    found = await customer_lines(lines, months_of, "agency-1", ["1100000001"])
    assert found[:2] == old and len(found) == 3 and "2024-05-10" in found[2]["days"]
