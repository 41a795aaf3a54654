"""Linking service wiring."""

from __future__ import annotations

from ppa_linking.projections import AGENCY_DIRECTORY, AgencyDirectory
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.service import Service


class LinkingService(Service):
    """Owns link requests, decisions, revocations and proxy-login sessions."""

    name = "linking"

    def __init__(self, runtime) -> None:
        super().__init__(runtime)
        self.agencies = AgencyDirectory(self.docs.collection(AGENCY_DIRECTORY))

    async def start(self) -> None:
        await self.agencies.setup()

    def consumers(self) -> list[ConsumerSpec]:
        return [self.agencies.spec()]
