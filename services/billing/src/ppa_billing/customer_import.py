"""Bulk customer import: preview a file's rows against the agency's customers, then write them in batches.

One-by-one registration costs several round trips per customer (the read model, the serial claim, the stream's
head, the append, the read model again, the code): a few hundred a second. An import does each of those steps
once per batch of `BATCH` rows instead: point reads by `_id` for the batch, one bulk insert of serial claims, one
bulk append (`record_many`: still one `CustomerRegistered`/`CustomerChanged` event per customer stream, so every
consumer applies them as it applies single registrations), one bulk write of the read model and of the codes.

The guards are those of `Customers.register`: a serial number is claimed before the event is appended, and the
claim is checked to be this customer's (a row whose serial another stream holds is an error, nothing of it is
written); the stream's version makes the customer number atomic (a row whose stream moved on since the preview
is an error). A row is written whole (its event, then its read-model document and code) or, as an error, not at
all; one bad row never stops the others. Every read and write is scoped to the agency's own documents.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from ppa_billing.customers import Customers, _fields, hash_auth_code, stream_of
from ppa_billing.domain.customer import Customer
from ppa_billing.domain.customer_import import CHANGED, ERROR, NEW, ImportRow, judge, parse
from ppa_contracts.billing import CustomerChanged, CustomerRegistered

BATCH = 5000
RACED = "他の操作と同時に更新されたため取り込めませんでした。もう一度取り込んでください。"
SERIAL_TAKEN = "この製造番号は既に登録されています。"
Progress = Callable[[int, int], Awaitable[None] | None]


class CustomerImport:
    """Preview and import of one agency's customer file."""

    def __init__(self, customers: Customers) -> None:
        self.customers = customers

    async def preview(self, agency_id: str, data: bytes) -> list[ImportRow]:
        """Every row's result, nothing written. Raises ImportFileError for a file that cannot be read."""
        rows = parse(data)
        known = _Known(self.customers, agency_id)
        for at in range(0, len(rows), BATCH):
            await self._judge(agency_id, rows[at:at + BATCH], known, await known.deleted())
        return rows

    async def _judge(self, agency_id: str, rows: list[ImportRow], known: _Known,
                     deleted: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Judge the rows against the agency's live customers (`deleted`: the agency's deletions, as just read)."""
        numbers = list(dict.fromkeys(r.customer_number for r in rows if not r.errors))
        docs = await known.customers(numbers, deleted)
        serials = list(dict.fromkeys(r.values["serial_number"] for r in rows if r.values["serial_number"]))
        holders: dict[str, str] = {}
        for serial, claim in (await known.claims(serials)).items():
            owner, number = claim["stream"].removeprefix("customer:").rsplit(":", 1)
            holders[serial] = number if owner == agency_id else ""
        for number, doc in docs.items():  # a customer stored before serials were claimed holds its serial too
            holders.setdefault(doc["serial_number"], number)
        judge(rows, docs, holders)
        return docs

    async def run(self, agency_id: str, data: bytes, progress: Progress | None = None) -> list[ImportRow]:
        """Import every new or changed row; returns every row's result (rows that lost a race become errors)."""
        rows = parse(data)
        known = _Known(self.customers, agency_id)
        done = 0
        for at in range(0, len(rows), BATCH):
            batch = rows[at:at + BATCH]
            await self._write(agency_id, batch, known)
            done += len(batch)
            if progress is not None and (waiting := progress(done, len(rows))) is not None:
                await waiting
        return rows

    async def _write(self, agency_id: str, rows: list[ImportRow], known: _Known) -> None:
        c = self.customers
        deleted = await known.deleted()
        docs = await self._judge(agency_id, rows, known, deleted)
        writes = [r for r in rows if r.status in (NEW, CHANGED)]
        if not writes:
            return
        now = time.time()
        streams = {id(r): stream_of(agency_id, r.customer_number) for r in writes}
        moved = [r for r in writes if r.status == NEW or docs[r.customer_number]["serial_number"]
                 != r.customer.serial_number]
        mine = [{"_id": r.customer.serial_number, "stream": streams[id(r)], "at": now} for r in moved]
        if await c.serials.insert_many(mine) == len(mine):  # every claim was free and is this import's now
            claims = {claim["_id"]: claim for claim in mine}
        else:  # some were held (by another customer, or by this file's rows from a run that stopped): as stored
            claims = await c.serials.get_many([r.customer.serial_number for r in moved])
        for r in moved:
            if claims.get(r.customer.serial_number, {}).get("stream") != streams[id(r)]:
                _refuse(r, "製造番号", SERIAL_TAKEN)
        writes = [r for r in writes if r.status != ERROR]
        commits = []
        for r in writes:
            stream, customer = streams[id(r)], r.customer
            if r.status == NEW:
                doc_id = f"{agency_id}:{customer.customer_number}"
                version = deleted[doc_id]["_v"] if doc_id in deleted else 0
                payload: Any = CustomerRegistered(agency_id=agency_id, customer_number=customer.customer_number,
                                                  auth_code_hash=hash_auth_code(customer.auth_code),
                                                  **_fields(customer))
            else:
                version = docs[customer.customer_number]["_v"]
                payload = CustomerChanged(agency_id=agency_id, customer_number=customer.customer_number,
                                          **_fields(customer))
            commits.append((stream, version, payload, customer.customer_number))
        conflicts = await c.service.record_many(commits)
        for r in writes:
            if streams[id(r)] in conflicts:
                _refuse(r, "", RACED)
        # a claim this import made for a row that became an error is let go again
        lost = [r for r in moved if r.status == ERROR and claims.get(r.customer.serial_number, {}).get("stream")
                == streams[id(r)]]
        for r in lost:
            await c._release_serial(r.customer.serial_number, streams[id(r)])
        applied = [(r, commit) for r, commit in zip(writes, commits, strict=True) if r.status != ERROR]
        written = await self._apply(agency_id, applied, docs, known)
        released = [r.customer.serial_number for r in lost]
        for r in moved:
            if r.status == CHANGED:
                await c._release_serial(docs[r.customer_number]["serial_number"], streams[id(r)])
                released.append(docs[r.customer_number]["serial_number"])
        known.wrote(written, {r.customer.serial_number: claims[r.customer.serial_number] for r in moved
                              if r.status != ERROR}, released)

    async def _apply(self, agency_id: str, applied: list, docs: dict[str, dict[str, Any]],
                     known: _Known) -> list[dict[str, Any]]:
        """The read model and the codes of the appended rows, in bulk (the consumer applies the same events
        again later: by their version, a no-op). Returns the documents written and not deleted since."""
        c = self.customers
        at = datetime.now(UTC).isoformat()
        out, codes, first, fresh_codes = [], [], [], []
        for row, (stream, version, payload, _) in applied:
            customer: Customer = row.customer
            fields = {k: v for k, v in payload.model_dump(mode="json").items() if k != "auth_code_hash"}
            doc = {**docs.get(customer.customer_number, {}), **fields, "_id": f"{agency_id}:{customer.customer_number}",
                   "_v": version + 1, "updated_at": at}
            if isinstance(payload, CustomerRegistered):
                doc |= {"registered_at": at, "auth_code_hash": payload.auth_code_hash}
                code = {"_id": stream, "auth_code": customer.auth_code}
                # a stream's first registration has no document nor code yet: inserted (an upsert costs a read
                # on some servers); one registered again after a deletion replaces what its history left
                (fresh_codes if version == 0 else codes).append(code)
            (first if version == 0 else out).append(doc)
        await c.coll.insert_many(first)  # one a consumer wrote first (the same event) is left as it is
        await c.coll.replace_many(out)
        await c.codes.insert_many(fresh_codes)
        await c.codes.replace_many(codes)
        out += first
        # deleted while this batch was written (after its events were applied by a consumer): take the write back
        gone = await known.deleted()
        for doc in out:
            if doc["_id"] in gone and gone[doc["_id"]]["_v"] > doc["_v"]:
                await c.coll.delete({"_id": doc["_id"], "_v": {"$lt": gone[doc["_id"]]["_v"]}})
        return [doc for doc in out if doc["_id"] not in gone or gone[doc["_id"]]["_v"] <= doc["_v"]]


class _Known:
    """What one preview or import run knows of the agency's customers, its deletions and the serial claims.

    Where `$in` is an index range (MongoDB, SQLite) each batch asks for its own ids. Where it is a pass over the
    collection comparing every document with every listed id (FerretDB 1.x, `in_is_pass`), a batch of 5,000 ids
    costs 5,000 comparisons per stored document, and an import into a growing collection grows with its square
    (20,000 rows: 25 of 34 s): there the agency's customers and the installation's claims are read once per run
    (one pass each, an equality filter or none), and the run's own writes are added as it goes. Nothing relies on
    this being fresh: a customer changed by someone else since is caught by its stream's version (the row becomes
    an error), a serial claimed since by the claim's insert (checked as stored); deletions are read every batch.
    """

    def __init__(self, customers: Customers, agency_id: str) -> None:
        self.c, self.agency_id = customers, agency_id
        self.once = customers.coll.in_is_pass  # one server holds the customers, claims and deletions
        self._customers: dict[str, dict[str, Any]] | None = None
        self._claims: dict[str, dict[str, Any]] | None = None

    async def deleted(self) -> dict[str, dict[str, Any]]:
        """The agency's deleted customers (the version each was deleted at), by document id: a prefix of `_id`
        (an index range on MongoDB, one pass without a list to compare on FerretDB), read as stored."""
        found = await self.c.deletions.find({"_id": {"$regex": f"^{re.escape(self.agency_id)}:"}})
        return {d["_id"]: d for d in found}

    async def customers(self, numbers: list[str], deleted: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The agency's live customers with these numbers, by number (`deleted`: the agency's deletions)."""
        c = self.c
        if not self.once:
            found = await c.coll.find({"agency_id": self.agency_id, "customer_number": {"$in": numbers}})
            return {d["customer_number"]: d for d in await c._live(found, deleted)}
        if self._customers is None:
            self._customers = {d["customer_number"]: d for d in await c.coll.find({"agency_id": self.agency_id})}
        wanted = [self._customers[n] for n in numbers if n in self._customers]
        return {d["customer_number"]: d for d in await c._live(wanted, deleted)}

    async def claims(self, serials: list[str]) -> dict[str, dict[str, Any]]:
        """The serial claims of these serial numbers, by serial number."""
        if not self.once:
            return {d["_id"]: d for d in await self.c.serials.find({"_id": {"$in": serials}})} if serials else {}
        if self._claims is None:
            self._claims = {d["_id"]: d for d in await self.c.serials.find()}
        return {s: self._claims[s] for s in serials if s in self._claims}

    def wrote(self, docs: list[dict[str, Any]], claims: dict[str, dict[str, Any]], released: list[str]) -> None:
        """What a batch of the run wrote: customer documents, claims taken and claims let go."""
        if self._customers is not None:
            self._customers |= {d["customer_number"]: d for d in docs}
        if self._claims is not None:
            self._claims |= claims
            for serial in released:
                self._claims.pop(serial, None)


def _refuse(row: ImportRow, label: str, reason: str) -> None:
    row.status = ERROR
    row.errors[label] = reason
