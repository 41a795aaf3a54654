"""Metering's device registry, built from billing's customer events: serial → customer, auth code hash.

One document per customer (`<agency id>:<customer number>`, read by the agency-scoped queries) and a
copy per serial number (`device_serials`, `_id` = serial) for the device API and the daily projection,
so a device is found by `_id` alone: the only filter FerretDB 1.x answers from an index. Serials a
customer no longer has are remembered on its document and their copies removed, also on a redelivery.
"""

from __future__ import annotations

import hashlib
import hmac

from ppa_contracts import Envelope, Payload
from ppa_contracts.billing import AuthCodeReissued, CustomerChanged, CustomerDeleted, CustomerRegistered
from ppa_contracts.topics import BILLING_CUSTOMER
from ppa_runtime.bus import Record
from ppa_runtime.consumer import (ConsumerSpec, apply_versioned, apply_versioned_new, deleted_after,
                                  record_deletion)
from ppa_runtime.docstore import Collection

DEVICES = "devices"
SERIALS = "device_serials"
DELETIONS = "device_deletions"  # customer id → the version it was deleted at: older events of it are late
COPIED = ("agency_id", "customer_number", "serial_number", "auth_code_hash")


class DeviceRegistry:
    """Customers with their device serial and auth code hash, found by serial number."""

    def __init__(self, coll: Collection, serials: Collection, deletions: Collection) -> None:
        self.coll = coll
        self.serials = serials
        self.deletions = deletions

    async def setup(self) -> None:
        await self.coll.ensure_index("serial_number")

    async def by_serials(self, serials: list[str]) -> dict[str, dict]:
        """The device record (agency, customer, auth code hash) of each known serial number."""
        return await self.serials.get_many(serials)

    async def authenticate(self, serial: str, auth_code: str) -> dict | None:
        """The device's customer when the auth code matches (constant-time compare), else None."""
        found = await self.serials.get(serial)
        given = hashlib.sha256(auth_code.encode()).hexdigest()
        if found and hmac.compare_digest(found.get("auth_code_hash", ""), given):
            return found
        hmac.compare_digest(given, given)  # same work when the serial is unknown
        return None

    async def on_event(self, event: Payload, env: Envelope) -> None:
        doc_id = f"{event.agency_id}:{event.customer_number}"
        version = env.aggregateversion or 0
        if isinstance(event, CustomerDeleted):
            await record_deletion(self.deletions, doc_id, version)
        elif await deleted_after(self.deletions, doc_id, version):
            # redelivered after a crash, older than the customer's deletion: it must not give the deleted
            # customer's device back its serial and auth code until the deletion is redelivered too
            return
        before = await self.coll.get(doc_id)
        if isinstance(event, CustomerDeleted):
            await self.coll.delete({"_id": doc_id, "_v": {"$lt": version}})
            for serial in {event.serial_number, *(before or {}).get("retired_serials", [])}:
                await self._forget(serial, doc_id)
            return
        fields: dict = {}
        if isinstance(event, (CustomerRegistered, CustomerChanged)):
            fields = {"agency_id": event.agency_id, "customer_number": event.customer_number,
                      "serial_number": event.serial_number}
            if before and before.get("serial_number") not in (None, event.serial_number):
                fields["retired_serials"] = sorted({*before.get("retired_serials", []), before["serial_number"]})
        if isinstance(event, (CustomerRegistered, AuthCodeReissued)):
            fields["auth_code_hash"] = event.auth_code_hash
        await apply_versioned(self.coll, doc_id, version, {"$set": fields})
        # Always from the document as it now is (also on a redelivery): the copy of its current serial.
        current = await self.coll.get(doc_id)
        if current is None or not current.get("serial_number"):
            return
        await self.serials.replace(_serial_copy(current))
        for serial in current.get("retired_serials", []):
            if serial != current["serial_number"]:
                await self._forget(serial, doc_id)

    async def on_batch(self, records: list[Record]) -> None:
        """A fetched batch of customer events. A batch of registrations alone (an import's thousands) is applied
        with a handful of round trips: the deletions read, then the documents (`apply_versioned_new`), then the
        serial copies written in one bulk. Anything else (a change, a deletion, a customer twice, one ever deleted,
        an insert that met a document written meanwhile) goes event by event through `on_event`, as the consumer
        would; both are idempotent, so a batch that stopped half-way is completed by its redelivery."""
        events = [(r.envelope.payload(), r.envelope) for r in records if r.type in self._types]
        if not events:
            return
        ids = [f"{e.agency_id}:{e.customer_number}" for e, _ in events]
        if all(isinstance(e, CustomerRegistered) for e, _ in events) and not await self.deletions.get_many(ids):
            current = await apply_versioned_new(self.coll, [
                (doc_id, env.aggregateversion or 0, {"$set": {k: getattr(e, k) for k in COPIED}})
                for (e, env), doc_id in zip(events, ids, strict=True)])
            # one stored with retired serials has copies to remove: the event-by-event way does that
            if current is not None and not any(doc.get("retired_serials") for doc in current.values()):
                await self.serials.replace_many([_serial_copy(doc) for doc in current.values()
                                                 if doc.get("serial_number")])
                return
        for event, env in events:
            await self.on_event(event, env)

    async def _forget(self, serial: str, doc_id: str) -> None:
        """Remove a serial's copy if it is still this customer's (another may have the serial by now)."""
        copy = await self.serials.get(serial)
        if copy is not None and copy["customer"] == doc_id:
            await self.serials.delete({"_id": serial})

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            group="metering.devices", name=DEVICES, topics=[BILLING_CUSTOMER],
            collections=[DEVICES, SERIALS, DELETIONS],
            setup=self.setup, dedupe=False, on_batch=self.on_batch,
            handlers={t: self.on_event for t in self._types},
        )

    _types = frozenset(c.event_type() for c in (CustomerRegistered, CustomerChanged, CustomerDeleted, AuthCodeReissued))


def _serial_copy(doc: dict) -> dict:
    """The copy of a customer's device record under its current serial number (`device_serials`)."""
    return {"_id": doc["serial_number"], "customer": doc["_id"], **{k: doc.get(k) for k in COPIED}}
