"""Metering's device registry, built from billing's customer events: serial → customer, auth code hash."""

from __future__ import annotations

import hashlib
import hmac

from ppa_contracts import Envelope, Payload
from ppa_contracts.billing import AuthCodeReissued, CustomerChanged, CustomerDeleted, CustomerRegistered
from ppa_contracts.topics import BILLING_CUSTOMER
from ppa_runtime.consumer import ConsumerSpec, apply_versioned
from ppa_runtime.docstore import Collection

DEVICES = "devices"


class DeviceRegistry:
    """One document per customer (keyed by agency and number), looked up by serial number."""

    def __init__(self, coll: Collection) -> None:
        self.coll = coll

    async def setup(self) -> None:
        await self.coll.ensure_index("serial_number")

    async def authenticate(self, serial: str, auth_code: str) -> dict | None:
        """The device's customer when the auth code matches (constant-time compare), else None."""
        found = await self.coll.find({"serial_number": serial}, limit=1)
        given = hashlib.sha256(auth_code.encode()).hexdigest()
        if found and hmac.compare_digest(found[0]["auth_code_hash"], given):
            return found[0]
        hmac.compare_digest(given, given)  # same work when the serial is unknown
        return None

    async def on_event(self, event: Payload, env: Envelope) -> None:
        doc_id = f"{event.agency_id}:{event.customer_number}"
        version = env.aggregateversion or 0
        if isinstance(event, CustomerDeleted):
            await self.coll.delete({"_id": doc_id, "_v": {"$lt": version}})
            return
        fields: dict = {}
        if isinstance(event, (CustomerRegistered, CustomerChanged)):
            fields = {"agency_id": event.agency_id, "customer_number": event.customer_number,
                      "serial_number": event.serial_number}
        if isinstance(event, (CustomerRegistered, AuthCodeReissued)):
            fields["auth_code_hash"] = event.auth_code_hash
        await apply_versioned(self.coll, doc_id, version, {"$set": fields})

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            group="metering.devices", name=DEVICES, topics=[BILLING_CUSTOMER], collections=[DEVICES],
            setup=self.setup, dedupe=False,
            handlers={c.event_type(): self.on_event
                      for c in (CustomerRegistered, CustomerChanged, CustomerDeleted, AuthCodeReissued)},
        )
