"""Linking's view of owners, and what their grants and withdrawals cause.

One consumer group reads identity's owner topic in order (the key is the owner id, so one owner's
events arrive in the order identity stored them): profile and product events keep the directory
current, so when an `agency_access_granted` arrives the directory already holds the owner as they
were at that moment, and the link request carries that snapshot. The directory's documents are
applied once per stream version (owner stream for the owner, product stream for a product).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ppa_contracts import Envelope
from ppa_contracts.linking import LinkOwner, LinkProduct, ProxyEndReason, RevokeReason
from ppa_contracts.owner import (
    AgencyAccessGranted,
    AgencyAccessWithdrawn,
    OwnerProfile,
    OwnerProfileChanged,
    OwnerRegistered,
    Product,
    ProductChanged,
    ProductRegistered,
)
from ppa_contracts.topics import IDENTITY_OWNER
from ppa_linking.domain.links import LinkStatus
from ppa_runtime.consumer import ConsumerSpec, apply_versioned
from ppa_runtime.docstore import Collection

if TYPE_CHECKING:
    from ppa_linking.service import LinkingService

OWNER_DIRECTORY = "owner_directory"
OWNER_PRODUCTS = "owner_products"


def _profile_fields(profile: OwnerProfile) -> dict[str, Any]:
    return {"email": profile.email.strip().lower(), "name": profile.name, "name_kana": profile.name_kana,
            "postal_code": profile.postal_code, "prefecture": profile.prefecture, "city": profile.city,
            "street": profile.street}


def _product_fields(owner_id: str, product: Product) -> dict[str, Any]:
    return {**product.model_dump(mode="json"), "owner_id": owner_id,
            "seq": int(product.product_id) if product.product_id.isdigit() else 0}


class OwnerUnknown(LookupError):
    """The directory has not seen this owner (yet): the grant is retried, then dead-lettered."""


class OwnerDirectory:
    """Owners and their products by id, as identity last published them."""

    def __init__(self, service: LinkingService, owners: Collection, products: Collection) -> None:
        self.svc = service
        self.coll = owners
        self.products = products

    async def setup(self) -> None:
        await self.coll.ensure_index("email")
        await self.products.ensure_index("owner_id")

    async def snapshot(self, owner_id: str) -> tuple[LinkOwner, list[LinkProduct]]:
        """The owner and products as they are now; OwnerUnknown when never seen."""
        doc = await self.coll.get(owner_id)
        if doc is None:
            raise OwnerUnknown(owner_id)
        return self._owner(doc), await self._products(owner_id)

    async def current(self, owner_id: str, fallback: LinkOwner,
                      fallback_products: list[LinkProduct]) -> tuple[LinkOwner, list[LinkProduct]]:
        """The owner now, or what the link request recorded when the directory lacks them (a rebuild)."""
        doc = await self.coll.get(owner_id)
        if doc is None:
            return fallback, fallback_products
        return self._owner(doc), (await self._products(owner_id)) or fallback_products

    async def ids_by_email(self, text: str) -> list[str]:
        """Ids of owners whose e-mail contains `text` (case-insensitive)."""
        docs = await self.coll.find({"email": {"$regex": re.escape(text.strip()), "$options": "i"}}, limit=500)
        return [d["_id"] for d in docs]

    async def many(self, owner_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Directory documents by owner id."""
        if not owner_ids:
            return {}
        return {d["_id"]: d for d in await self.coll.find({"_id": {"$in": owner_ids}})}

    @staticmethod
    def _owner(doc: dict[str, Any]) -> LinkOwner:
        return LinkOwner.model_validate({**doc, "owner_id": doc["_id"]})

    async def _products(self, owner_id: str) -> list[LinkProduct]:
        docs = await self.products.find({"owner_id": owner_id}, sort=[("seq", 1)])
        return [LinkProduct.model_validate({**d, "product_id": d.get("product_id", d["_id"])}) for d in docs]

    async def on_registered(self, event: OwnerRegistered, env: Envelope) -> None:
        await apply_versioned(self.coll, event.owner_id, env.aggregateversion or 0, {"$set": {
            **_profile_fields(event.profile), "registered_at": event.registered_at.isoformat()}})

    async def on_profile_changed(self, event: OwnerProfileChanged, env: Envelope) -> None:
        await apply_versioned(self.coll, event.owner_id, env.aggregateversion or 0,
                              {"$set": _profile_fields(event.profile)})

    async def on_product(self, event: ProductRegistered | ProductChanged, env: Envelope) -> None:
        await apply_versioned(self.products, f"{event.owner_id}:{event.product.product_id}",
                              env.aggregateversion or 0, {"$set": _product_fields(event.owner_id, event.product)})

    async def on_granted(self, event: AgencyAccessGranted, env: Envelope) -> None:
        """A link request for the agency (unless one is open), with the owner as the directory has them now."""
        snapshot = await self.snapshot(event.owner_id)
        await self.svc.links.on_granted(event.owner_id, event.agency_id, event.agency_email.strip().lower(), env.id,
                                        snapshot, env.aggregateversion)

    async def on_withdrawn(self, event: AgencyAccessWithdrawn, env: Envelope) -> None:
        """The open link ends, and with it every proxy session of that link, at once."""
        current = await self.svc.links.on_withdrawn(event.owner_id, event.agency_id, RevokeReason.OWNER_WITHDREW,
                                                    env.aggregateversion)
        if current is not None and current.status is LinkStatus.REVOKED:
            await self.svc.proxies.end_for_link(current.link_id, ProxyEndReason.REVOKED)

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            group="linking.owners",
            name=OWNER_DIRECTORY,
            collections=[OWNER_DIRECTORY, OWNER_PRODUCTS],
            setup=self.setup,
            topics=[IDENTITY_OWNER],
            handlers={
                OwnerRegistered.event_type(): self.on_registered,
                OwnerProfileChanged.event_type(): self.on_profile_changed,
                ProductRegistered.event_type(): self.on_product,
                ProductChanged.event_type(): self.on_product,
                AgencyAccessGranted.event_type(): self.on_granted,
                AgencyAccessWithdrawn.event_type(): self.on_withdrawn,
            },
        )
