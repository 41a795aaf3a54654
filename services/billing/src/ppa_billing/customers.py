"""Billing's customers: commands append to the customer's stream; the `customers` read model is applied
inline (read-your-writes) and again by billing's own consumer (idempotent by stream version)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

from ppa_billing.domain.customer import Customer, InvalidCustomer, edit_customer, new_customer, reissue_auth_code
from ppa_billing.exports import in_chunks
from ppa_contracts import Envelope, Payload
from ppa_contracts.billing import AuthCodeReissued, CustomerChanged, CustomerDeleted, CustomerRegistered
from ppa_contracts.text import normalized
from ppa_contracts.topics import BILLING_CUSTOMER
from ppa_runtime.bus import Record
from ppa_runtime.consumer import (ConsumerSpec, apply_versioned, apply_versioned_new, deleted_after,
                                  record_deletion)
from ppa_runtime.docstore import DocStore, DuplicateKey
from ppa_runtime.eventstore import ConcurrencyConflict

CUSTOMERS = "customers"
DELETIONS = "customer_deletions"  # customer id → the version it was deleted at: older events of it are late
AUTH_CODES = "auth_codes"
SERIALS = "serial_claims"  # serial number → the customer stream holding it (a command-side guard, not a projection)
CLAIMS_BACKFILLED = "~claims-backfilled"  # outside SERIAL_NUMBER's alphabet
CLAIM_IN_FLIGHT_SECONDS = 60  # a claim whose holder has not (yet) registered the serial is kept this long
SERIAL_TAKEN = "この製造番号は既に登録されています。"
NUMBER_TAKEN = "この顧客番号は既に登録されています。"
PAGE_SIZE = 20
CHUNK = 2000  # customers read at a time for a file of the whole list (its CSV)


class CustomerNotFound(LookupError):
    """No such customer for this agency."""


class CustomerConflict(Exception):
    """The customer number or serial number is taken."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def hash_auth_code(code: str) -> str:
    """Auth codes are 16 random characters (~95 bits), so a plain SHA-256 is a safe verifier."""
    return hashlib.sha256(code.encode()).hexdigest()


def stream_of(agency_id: str, number: str) -> str:
    return f"customer:{agency_id}:{number}"


def _fields(c: Customer) -> dict[str, Any]:
    return {
        "serial_number": c.serial_number, "name": c.name, "name_kana": c.name_kana,
        "contract_start": c.contract_start, "contract_end": c.contract_end, "base_fee": c.base_fee,
        "sell_unit_price": c.sell_unit_price, "usage_unit_price": c.usage_unit_price,
        "notes": c.notes, "email": c.email,
    }


def to_customer(doc: dict[str, Any], auth_code: str) -> Customer:
    """Rebuild the domain customer from its read-model document."""
    return new_customer(
        customer_number=doc["customer_number"], serial_number=doc["serial_number"], name=doc["name"],
        name_kana=doc.get("name_kana", ""), contract_start=doc.get("contract_start"),
        contract_end=doc.get("contract_end"), base_fee=doc["base_fee"], sell_unit_price=doc["sell_unit_price"],
        usage_unit_price=doc["usage_unit_price"], notes=doc.get("notes", ""), email=doc.get("email"),
        auth_code=auth_code, text_limits=False,
    )


class Customers:
    """Commands and queries on PPA customers, always within one agency."""

    def __init__(self, service, docs: DocStore) -> None:
        self.service = service
        self.coll = docs.collection(CUSTOMERS)
        self.deletions = docs.collection(DELETIONS)
        self.codes = docs.collection(AUTH_CODES)
        self.serials = docs.collection(SERIALS)

    async def setup(self) -> None:
        await self.coll.ensure_index("agency_id", "customer_number", unique=True)
        await self.coll.ensure_index("serial_number", unique=True)
        await self.coll.ensure_index("agency_id", "registered_at")
        await self._backfill_claims()

    async def _backfill_claims(self) -> None:
        """Customers registered before serial claims existed get theirs, once per install (a marker that no serial
        number can spell records it), so `_serial_held` sees every registered serial."""
        if await self.serials.get(CLAIMS_BACKFILLED) is not None:
            return
        for doc in await self.coll.find({}):
            try:
                await self.serials.insert({"_id": doc["serial_number"], "stream": stream_of(doc["agency_id"],
                                           doc["customer_number"]), "at": time.time()})
            except DuplicateKey:
                pass
        try:
            await self.serials.insert({"_id": CLAIMS_BACKFILLED})
        except DuplicateKey:
            pass

    async def _free_version(self, stream: str) -> int:
        """The version a customer number is registered at: 0, or after the history of a deleted customer. A live
        customer's stream (one registered a moment ago, before the read model shows it) raises CustomerConflict."""
        events = await self.service.events.read(stream)
        if events and not isinstance(events[-1].payload(), CustomerDeleted):
            raise CustomerConflict({"customer_number": NUMBER_TAKEN})
        return len(events)

    async def _append(self, stream: str, version: int, payload: Payload) -> None:
        await self.service.record(stream, version, payload, subject=payload.customer_number)
        await self.apply(payload, version + 1, datetime.now(UTC))

    async def register(self, agency_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Validate and register a customer; a new 認証コード is drawn.

        The serial number is claimed first (atomically, so two registrations of one serial cannot both pass),
        then the event is appended (the stream's version makes the customer number atomic), then the code is
        kept: a registration that lost the race never overwrites the winner's code.
        """
        customer = new_customer(**data)
        errors: dict[str, str] = {}
        if await self.coll.get(f"{agency_id}:{customer.customer_number}") is not None:
            errors["customer_number"] = NUMBER_TAKEN
        stream = stream_of(agency_id, customer.customer_number)
        if await self._serial_held(customer.serial_number, stream):
            errors["serial_number"] = SERIAL_TAKEN
        if errors:
            raise CustomerConflict(errors)
        version = await self._free_version(stream)
        await self._claim_serial(customer.serial_number, stream)
        try:
            await self._append(stream, version, CustomerRegistered(
                agency_id=agency_id, customer_number=customer.customer_number,
                auth_code_hash=hash_auth_code(customer.auth_code), **_fields(customer)))
        except ConcurrencyConflict as exc:  # the same number registered at the same moment
            await self._release_serial(customer.serial_number, stream)
            raise CustomerConflict({"customer_number": NUMBER_TAKEN}) from exc
        await self.codes.replace({"_id": stream, "auth_code": customer.auth_code})
        return await self.get(agency_id, customer.customer_number)

    async def _serial_held(self, serial: str, stream: str) -> bool:
        """Whether another customer stream holds the serial (read by `_id`: a count over the customers would scan
        them on a MongoDB-protocol server without secondary-index pushdown, once per registration)."""
        claim = await self.serials.get(serial)
        return claim is not None and claim["stream"] != stream and await self._claim_live(serial, claim)

    async def _claim_live(self, serial: str, claim: dict[str, Any]) -> bool:
        """A claim stands while its holder has the serial, or while its registration may still be in flight."""
        agency_id, number = claim["stream"].removeprefix("customer:").rsplit(":", 1)
        holder = await self.coll.get(f"{agency_id}:{number}")
        return (holder is not None and holder["serial_number"] == serial) or \
            time.time() - claim["at"] < CLAIM_IN_FLIGHT_SECONDS

    async def _claim_serial(self, serial: str, stream: str) -> None:
        """Hold a serial number for a customer stream, or raise CustomerConflict when another one holds it."""
        try:
            await self.serials.insert({"_id": serial, "stream": stream, "at": time.time()})
            return
        except DuplicateKey:
            pass
        claim = await self.serials.get(serial)
        if claim is None:  # released in between
            return await self._claim_serial(serial, stream)
        if claim["stream"] == stream:
            return
        if await self._claim_live(serial, claim):
            raise CustomerConflict({"serial_number": SERIAL_TAKEN})
        # a stale claim: its holder let the serial go or never registered (a crash in between); take it over
        if not await self.serials.update({"_id": serial, "stream": claim["stream"], "at": claim["at"]},
                                         {"$set": {"stream": stream, "at": time.time()}}):
            raise CustomerConflict({"serial_number": SERIAL_TAKEN})  # someone else took it over first

    async def _release_serial(self, serial: str, stream: str) -> None:
        await self.serials.delete({"_id": serial, "stream": stream})

    async def _load(self, agency_id: str, number: str) -> tuple[dict[str, Any], Customer]:
        doc = await self.coll.get(f"{agency_id}:{number}")
        if doc is None:
            raise CustomerNotFound(number)
        code = await self.codes.get(stream_of(agency_id, number))
        return doc, to_customer(doc, code["auth_code"])

    async def change(self, agency_id: str, number: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Edit the editable fields (never the number or the auth code)."""
        doc, customer = await self._load(agency_id, number)
        changed = edit_customer(customer, changes)
        stream = stream_of(agency_id, number)
        moved = changed.serial_number != customer.serial_number
        if moved:
            if await self._serial_held(changed.serial_number, stream):
                raise CustomerConflict({"serial_number": SERIAL_TAKEN})
            await self._claim_serial(changed.serial_number, stream)
        try:
            await self._append(stream, doc["_v"], CustomerChanged(
                agency_id=agency_id, customer_number=number, **_fields(changed)))
        except ConcurrencyConflict:
            if moved:
                await self._release_serial(changed.serial_number, stream)
            raise
        if moved:
            await self._release_serial(customer.serial_number, stream)
        return await self.get(agency_id, number)

    async def reissue(self, agency_id: str, number: str) -> dict[str, Any]:
        """Draw a new auth code; the old one stops working."""
        doc, customer = await self._load(agency_id, number)
        renewed = reissue_auth_code(customer)
        stream = stream_of(agency_id, number)
        await self._append(stream, doc["_v"], AuthCodeReissued(
            agency_id=agency_id, customer_number=number, serial_number=customer.serial_number,
            auth_code_hash=hash_auth_code(renewed.auth_code)))
        await self.codes.replace({"_id": stream, "auth_code": renewed.auth_code})
        return await self.get(agency_id, number)

    async def delete(self, agency_id: str, number: str) -> None:
        """Delete the customer (an event; issued invoices stay)."""
        doc, _ = await self._load(agency_id, number)
        await self._append(stream_of(agency_id, number), doc["_v"], CustomerDeleted(
            agency_id=agency_id, customer_number=number, serial_number=doc["serial_number"]))
        await self._release_serial(doc["serial_number"], stream_of(agency_id, number))  # free for another home

    async def get(self, agency_id: str, number: str) -> dict[str, Any]:
        doc = await self.coll.get(f"{agency_id}:{number}")
        if doc is None or not await self._live([doc]):
            raise CustomerNotFound(number)
        code = await self.codes.get(stream_of(agency_id, number))
        return {**doc, "auth_code": code["auth_code"] if code else None}

    @staticmethod
    def _filter(agency_id: str, q: str, customer_number: str, name: str, email: str) -> dict[str, Any]:
        flt: dict[str, Any] = {"agency_id": agency_id}
        ands: list[dict[str, Any]] = []
        for fields, text in ((("customer_number", "name", "name_kana", "email"), q),
                             (("customer_number",), customer_number), (("name", "name_kana"), name),
                             (("email",), email)):
            if text.strip():
                # as typed, and in NFKC: full-width digits and letters, half-width kana find the usual forms
                patterns = dict.fromkeys((re.escape(text.strip()), re.escape(normalized(text.strip()))))
                ands.append({"$or": [{f: {"$regex": p, "$options": "i"}} for f in fields for p in patterns]})
        if ands:
            flt["$and"] = ands
        return flt

    async def search(self, agency_id: str, q: str = "", page: int = 1, per_page: int = PAGE_SIZE,
                     customer_number: str = "", name: str = "", email: str = "") -> tuple[list, int]:
        """Customers of the agency matching number, name, kana or e-mail (`q`: any of them), by number.

        `per_page=0` returns every match.
        """
        flt = self._filter(agency_id, q, customer_number, name, email)
        skip = (page - 1) * per_page if per_page else 0
        if not per_page or page == 1:
            docs = await self.coll.find(flt, sort=[("customer_number", 1)], skip=skip, limit=per_page)
            if not per_page or len(docs) < per_page:  # every match is on the page: no second pass to count them
                live = await self._live(docs)
                return live, len(live)
            return await self._live(docs), await self.coll.count(flt)
        total, docs = await asyncio.gather(self.coll.count(flt), self.coll.find(
            flt, sort=[("customer_number", 1)], skip=skip, limit=per_page))
        return await self._live(docs), total

    async def _live(self, docs: list[dict[str, Any]],
                    deleted: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The documents of customers not deleted since their version: an older event applied by one writer
        while another deletes the customer leaves a document for a moment (see `apply`), which no one reads.
        `deleted`: the deletions already read (at least those of these documents), else they are looked up."""
        if not docs:
            return docs
        if deleted is None:
            deleted = await self.deletions.get_many([d["_id"] for d in docs])
        return [d for d in docs if d["_id"] not in deleted or deleted[d["_id"]]["_v"] < d["_v"]]

    def chunks(self, agency_id: str, q: str = "", customer_number: str = "", name: str = "",
               email: str = "") -> AsyncIterator[list[dict[str, Any]]]:
        """Every match of `search`, in the same order, `CHUNK` at a time (for a CSV of any number of customers)."""
        async def live_chunks() -> AsyncIterator[list[dict[str, Any]]]:
            async for docs in in_chunks(lambda flt, n: self.coll.find(flt, sort=[("customer_number", 1)], limit=n),
                                        self._filter(agency_id, q, customer_number, name, email), CHUNK):
                yield await self._live(docs)

        return live_chunks()

    async def apply(self, event: Payload, version: int, at: datetime) -> None:
        """Apply one customer event to the read model (inline and from the consumer alike).

        Every writer applies every event, so one may apply an event another applied long ago. A deleted customer
        leaves no document to hold its version: the version it was deleted at is kept in `deletions`, and an older
        event of it changes nothing, neither before nor after the deletion is written (it would bring the customer
        back until the consumer reaches the deletion).
        """
        doc_id = f"{event.agency_id}:{event.customer_number}"
        if isinstance(event, CustomerDeleted):
            await record_deletion(self.deletions, doc_id, version)
            await self.coll.delete({"_id": doc_id, "_v": {"$lt": version}})
            return
        if await self._deleted_after(doc_id, version):
            return
        if isinstance(event, (CustomerRegistered, CustomerChanged)):
            written = await apply_versioned(self.coll, doc_id, version, {"$set": _fields_of(event, at)})
        elif isinstance(event, AuthCodeReissued):
            written = await apply_versioned(self.coll, doc_id, version, {
                "$set": {"auth_code_hash": event.auth_code_hash, "updated_at": at.isoformat()}})
        else:
            return
        if written and (deleted := await self._deleted_after(doc_id, version)):
            # deleted between the look above and this write: take the write back (readers pass over it meanwhile)
            await self.coll.delete({"_id": doc_id, "_v": {"$lt": deleted}})

    async def apply_many(self, events: list[tuple[Payload, int, datetime]]) -> None:
        """`apply` for events in order (event, version, time). A run of registrations alone, each of its own
        customer (an import's, which its API wrote already or its consumers apply first), takes a handful of round
        trips: the deletions read, then the documents written at once (`apply_versioned_new`). Anything else goes
        event by event, as does a run it cannot write at once (every step is idempotent)."""
        ids = [f"{e.agency_id}:{e.customer_number}" for e, _, _ in events]
        if ids and all(isinstance(e, CustomerRegistered) for e, _, _ in events) and (
                not await self.deletions.get_many(ids)):
            written = await apply_versioned_new(self.coll, [
                (doc_id, version, {"$set": _fields_of(event, at)})
                for (event, version, at), doc_id in zip(events, ids, strict=True)])
            if written is not None:
                # deleted between the look above and the insert: take those back, as `apply` does
                for doc_id, deletion in (await self.deletions.get_many(ids)).items():
                    await self.coll.delete({"_id": doc_id, "_v": {"$lt": deletion["_v"]}})
                return
        for event, version, at in events:
            await self.apply(event, version, at)

    async def _on_batch(self, records: list[Record]) -> None:
        await self.apply_many([(r.envelope.payload(), r.envelope.aggregateversion or 0, r.envelope.time)
                               for r in records if r.type in CUSTOMER_EVENTS])

    async def _deleted_after(self, doc_id: str, version: int) -> int:
        """The version the customer was deleted at, when that came after `version`; else 0."""
        return await deleted_after(self.deletions, doc_id, version)

    async def _on_event(self, event: Payload, env: Envelope) -> None:
        await self.apply(event, env.aggregateversion or 0, env.time)

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            group="billing.customers", name=CUSTOMERS, topics=[BILLING_CUSTOMER], collections=[CUSTOMERS, DELETIONS],
            setup=self.setup, dedupe=False, on_batch=self._on_batch,
            handlers={t: self._on_event for t in CUSTOMER_EVENTS},
        )


CUSTOMER_EVENTS = frozenset(c.event_type() for c in (CustomerRegistered, CustomerChanged, CustomerDeleted,
                                                     AuthCodeReissued))


def _fields_of(event: CustomerRegistered | CustomerChanged, at: datetime) -> dict[str, Any]:
    """The read model's fields an event of a customer's details sets (registered: its time and auth code too)."""
    data = event.model_dump(mode="json")
    fields = {k: data[k] for k in ("agency_id", "customer_number", *_fields_keys())}
    fields["updated_at"] = at.isoformat()
    if isinstance(event, CustomerRegistered):
        fields["registered_at"] = at.isoformat()
        fields["auth_code_hash"] = event.auth_code_hash
    return fields


def _fields_keys() -> tuple[str, ...]:
    return ("serial_number", "name", "name_kana", "contract_start", "contract_end", "base_fee",
            "sell_unit_price", "usage_unit_price", "notes", "email")


__all__ = ["Customers", "CustomerConflict", "CustomerNotFound", "InvalidCustomer", "date"]
