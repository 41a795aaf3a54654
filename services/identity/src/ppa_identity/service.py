"""Identity service: agency accounts (created, authenticated)."""

from __future__ import annotations

import uuid

import structlog

from ppa_contracts.identity import AgencyProfile, AgencyRegistered
from ppa_identity.agencies import AgencyAccounts
from ppa_identity.operators import OperatorAccounts
from ppa_identity.owners import OwnerAccounts
from ppa_identity.domain.agency import (
    Agency,
    AgencyCredentialSet,
    InvalidAgency,
    fold,
    normalize_email,
    stream_for,
    validate_new_agency,
)
from ppa_identity.passwords import hash_password, verify_password
from ppa_identity.sessions import SESSIONS, Sessions
from ppa_identity.throttle import FAILED_LOGINS, WINDOW, LoginThrottle
from ppa_runtime.auth import LoginLocked
from ppa_runtime.eventstore import ConcurrencyConflict
from ppa_runtime.service import Service

log = structlog.get_logger(__name__)


class AgencyExists(Exception):
    """An agency with this e-mail is registered already."""


class IdentityService(Service):
    """Owns agency and owner accounts and their credentials."""

    name = "identity"

    def __init__(self, runtime) -> None:
        super().__init__(runtime)
        self.sessions = Sessions(self.docs.collection(SESSIONS))
        self.throttle = LoginThrottle(self.docs.collection(FAILED_LOGINS))
        self.agencies = AgencyAccounts(self)
        self.operators = OperatorAccounts(self)
        self.owners = OwnerAccounts(self)

    async def start(self) -> None:
        await self.sessions.setup()
        await self.throttle.setup()
        await self.agencies.setup()
        await self.owners.setup()

    async def create_agency(self, email: str, password: str, profile: AgencyProfile) -> str:
        """Register an agency directly (CLI, first account); returns the agency id."""
        validate_new_agency(email, password, profile.company)
        email = normalize_email(email)
        agency_id = uuid.uuid4().hex
        try:
            await self.record(
                stream_for(email),
                0,
                AgencyRegistered(agency_id=agency_id, email=email, profile=profile),
                AgencyCredentialSet(agency_id=agency_id, password_hash=hash_password(password)),
                subject=agency_id,
            )
        except ConcurrencyConflict as exc:
            raise AgencyExists(email) from exc
        log.info("agency_registered", agency_id=agency_id)
        return agency_id

    async def owner_grants_agency(self, owner_id: str, agency_email: str) -> bool:
        """True while the owner lists this agency's e-mail among those allowed to log in."""
        return await self.owners.grants_agency(owner_id, agency_email)

    def routers(self):
        from ppa_identity.api import router

        return [router(self)]

    async def load_agency(self, email: str) -> Agency | None:
        """The agency registered under this e-mail, folded from its stream."""
        envelopes = await self.events.read(stream_for(email))
        return fold([e.payload() for e in envelopes])

    async def authenticate_agency(self, email: str, password: str) -> Agency | None:
        """The agency when the password matches, else None (same cost either way)."""
        agency = await self.load_agency(email) if email else None
        if verify_password(agency.password_hash if agency else None, password):
            return agency
        return None

    async def login_agency(self, email: str, password: str, ip: str) -> Agency | None:
        """Authenticate under throttling; raises LoginLocked after too many recent failures."""
        email = normalize_email(email)
        await self.throttle.check(email, ip)
        agency = await self.authenticate_agency(email, password)
        if agency is None:
            if await self.throttle.failed(email, ip) == self.throttle.slow_after:  # a burst begins: say so
                await self.agencies.warn_of_failures(email, self.throttle.slow_after, WINDOW_MINUTES)
        else:
            await self.throttle.succeeded(email)
        return agency


WINDOW_MINUTES = int(WINDOW.total_seconds() // 60)

__all__ = ["AgencyExists", "IdentityService", "InvalidAgency", "LoginLocked"]
