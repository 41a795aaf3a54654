"""Linking's read model of registered agencies, built from identity's agency events."""

from __future__ import annotations

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyProfileChanged, AgencyRegistered
from ppa_contracts.topics import IDENTITY_AGENCY
from ppa_runtime.consumer import ConsumerSpec, apply_versioned
from ppa_runtime.docstore import Collection

AGENCY_DIRECTORY = "agency_directory"


class AgencyDirectory:
    """Agencies by id and e-mail, so link requests can check that an e-mail belongs to an agency."""

    def __init__(self, coll: Collection) -> None:
        self.coll = coll

    async def setup(self) -> None:
        await self.coll.ensure_index("email", unique=True)

    async def on_registered(self, event: AgencyRegistered, env: Envelope) -> None:
        await apply_versioned(
            self.coll,
            event.agency_id,
            env.aggregateversion or 0,
            {"$set": {"email": event.email, "company": event.profile.company,
                      "registered_at": env.time.isoformat()},
             "$inc": {"applied_events": 1}},
        )

    async def on_profile_changed(self, event: AgencyProfileChanged, env: Envelope) -> None:
        await apply_versioned(
            self.coll, event.agency_id, env.aggregateversion or 0,
            {"$set": {"company": event.profile.company}, "$inc": {"applied_events": 1}},
        )

    async def by_email(self, email: str) -> dict | None:
        found = await self.coll.find({"email": email.strip().lower()}, limit=1)
        return found[0] if found else None

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            group="linking.agency-directory",
            name=AGENCY_DIRECTORY,
            collections=[AGENCY_DIRECTORY],
            setup=self.setup,
            topics=[IDENTITY_AGENCY],
            handlers={
                AgencyRegistered.event_type(): self.on_registered,
                AgencyProfileChanged.event_type(): self.on_profile_changed,
            },
            dedupe=False,
        )
