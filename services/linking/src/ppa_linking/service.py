"""Linking service wiring: projections, link commands, proxy sessions and the consumer groups."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ppa_contracts.linking import LinkOwner, LinkProduct
from ppa_linking.domain.links import Link
from ppa_linking.links import LinkBook
from ppa_linking.owners import OWNER_DIRECTORY, OWNER_PRODUCTS, OwnerDirectory
from ppa_linking.projections import AGENCY_DIRECTORY, AgencyDirectory
from ppa_linking.proxy import ProxySessions
from ppa_linking.settings import LinkingSettings
from ppa_linking.users import AGENCY_USERS, AgencyUsers, UserPage
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.service import Service


@dataclass(frozen=True)
class LinkView:
    """What the agency's user page shows: the link, and the owner and products as they are now."""

    link: Link
    owner: LinkOwner
    products: list[LinkProduct]


class LinkingService(Service):
    """Owns link requests, decisions, revocations and proxy-login sessions."""

    name = "linking"

    def __init__(self, runtime, settings: LinkingSettings | None = None) -> None:
        super().__init__(runtime)
        self.linking_settings = settings or LinkingSettings()
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.agencies = AgencyDirectory(self.docs.collection(AGENCY_DIRECTORY))
        self.owners = OwnerDirectory(self, self.docs.collection(OWNER_DIRECTORY), self.docs.collection(OWNER_PRODUCTS))
        self.links = LinkBook(self)
        self.users = AgencyUsers(self.docs.collection(AGENCY_USERS), self.owners)
        self.proxies = ProxySessions(self)

    async def start(self) -> None:
        await self.agencies.setup()
        await self.owners.setup()
        await self.links.setup()
        await self.users.setup()
        await self.proxies.setup()

    def consumers(self) -> list[ConsumerSpec]:
        return [self.agencies.spec(), self.owners.spec(), self.users.spec(), self.proxies.signouts_spec()]

    def background(self) -> list[Callable[[asyncio.Event], Awaitable[None]]]:
        return [self.proxies.sweep]  # expiries recorded when they happen (the worker's process only)

    async def user_list(self, agency_id: str, q: str = "", page: int = 1) -> UserPage:
        """This agency's pending requests and linked owners (登録ユーザー一覧)."""
        return await self.users.page(agency_id, q, page, self.linking_settings.users_page_size)

    async def view(self, agency_id: str, link_id: str) -> LinkView:
        """One of this agency's links with the owner's current data; LinkNotFound otherwise."""
        _, link = await self.links.find(agency_id, link_id)
        owner, products = await self.owners.current(link.owner_id, link.owner, list(link.products))
        return LinkView(link, owner, products)

    async def decide(self, agency_id: str, link_id: str, approved: bool) -> LinkView:
        """Approve or reject one of this agency's pending links (AlreadyDecided otherwise)."""
        _, link = await self.links.find(agency_id, link_id)
        owner, _ = await self.owners.current(link.owner_id, link.owner, [])
        await self.links.decide(agency_id, link_id, approved, owner.email)
        return await self.view(agency_id, link_id)
