"""Each agency's billing settings: one stream per agency, a read model applied inline and by a consumer."""

from __future__ import annotations

from typing import Any

from ppa_billing.domain.invoice import RoundingMode
from ppa_billing.domain.settings import BillingSettings, new_settings
from ppa_contracts import Envelope
from ppa_contracts.billing import BillingSettingsChanged
from ppa_contracts.topics import BILLING_SETTINGS
from ppa_runtime.consumer import ConsumerSpec, apply_versioned
from ppa_runtime.docstore import DocStore

SETTINGS = "billing_settings"
_FIELDS = ("closing_day", "rounding", "issuer_name", "issuer_address", "registration_number")


def stream_of(agency_id: str) -> str:
    return f"settings:{agency_id}"


def to_settings(doc: dict[str, Any] | None) -> BillingSettings:
    """The settings a read-model document holds (the defaults when the agency never saved any)."""
    if doc is None:
        return BillingSettings()
    return BillingSettings(closing_day=doc["closing_day"], rounding=RoundingMode(doc["rounding"]),
                           issuer_name=doc.get("issuer_name", ""), issuer_address=doc.get("issuer_address", ""),
                           registration_number=doc.get("registration_number"))


def public(settings: BillingSettings) -> dict[str, Any]:
    """The settings as JSON."""
    return {"closing_day": settings.closing_day, "rounding": settings.rounding.value,
            "issuer_name": settings.issuer_name, "issuer_address": settings.issuer_address,
            "registration_number": settings.registration_number,
            "prices_include_tax": settings.prices_include_tax, "tax_rate_percent": settings.tax_rate_percent}


class AgencySettings:
    """Read and change an agency's billing settings."""

    def __init__(self, service, docs: DocStore) -> None:
        self.service = service
        self.coll = docs.collection(SETTINGS)

    async def get(self, agency_id: str) -> BillingSettings:
        return to_settings(await self.coll.get(agency_id))

    async def change(self, agency_id: str, data: dict[str, Any]) -> BillingSettings:
        """Validate and record the whole settings (raises InvalidSettings, changing nothing)."""
        settings = new_settings(**{k: data[k] for k in _FIELDS if k in data})
        stream = stream_of(agency_id)
        version = len(await self.service.events.read(stream))
        event = BillingSettingsChanged(agency_id=agency_id, closing_day=settings.closing_day,
                                       rounding=settings.rounding.value, issuer_name=settings.issuer_name,
                                       issuer_address=settings.issuer_address,
                                       registration_number=settings.registration_number)
        await self.service.record(stream, version, event, subject=agency_id)
        await self.apply(event, version + 1)
        return settings

    async def apply(self, event: BillingSettingsChanged, version: int) -> None:
        await apply_versioned(self.coll, event.agency_id, version,
                              {"$set": event.model_dump(mode="json")})

    async def _on_event(self, event: BillingSettingsChanged, env: Envelope) -> None:
        await self.apply(event, env.aggregateversion or 0)

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(group="billing.settings", name=SETTINGS, topics=[BILLING_SETTINGS], collections=[SETTINGS],
                            dedupe=False, handlers={BillingSettingsChanged.event_type(): self._on_event})
