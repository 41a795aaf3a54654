"""Bearer tokens for the JSON API: signed and short-lived, verifiable by any service's API process.

A token names the agency it was issued to; every query a route makes is scoped by that agency id. It also
names the agency's password version: the identity stream version of its last password change (0 for the password
set at registration). A service that serves the agency API keeps each agency's current password version
(`AgencyPasswords`, read from identity's events) and accepts a token only while the two are EQUAL: a password
change or an operator's reset retires every token issued until then, from the moment the service has read the
change (seconds), not when the token expires; a token naming any other version (one from the future included)
or an agency the service does not know is refused. Format and keys: docs/security.md.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyPasswordChanged, AgencyRegistered
from ppa_contracts.topics import IDENTITY_AGENCY
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.docstore import DocStore

TOKEN_SECONDS = 3600
CREDENTIALS = "agency_passwords"
SALT = "ppa.api.agency-token"
_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token", auto_error=False, scheme_name="AgencyToken",
    description="An agency's bearer token from POST /api/v1/auth/token (OAuth2 password grant); valid for "
                "`expires_in` seconds and only until the agency's password changes")


class LoginLocked(Exception):
    """Too many failed logins for this account or address: wait before trying again."""


@dataclass(frozen=True)
class AgencyPrincipal:
    """The agency a request acts for."""

    agency_id: str
    email: str
    password_version: int  # the agency's password version when the token was issued


def _serializer(keys: list[str]) -> URLSafeTimedSerializer:
    # itsdangerous signs with the last key and verifies with any of them (key rotation)
    return URLSafeTimedSerializer(keys, salt=SALT)


def issue_agency_token(keys: list[str], agency_id: str, email: str, password_version: int) -> str:
    """A signed bearer token for an agency whose current password has this version."""
    return _serializer(keys).dumps({"a": agency_id, "e": email, "p": password_version})


def read_agency_token(keys: list[str], token: str, max_age: int = TOKEN_SECONDS) -> AgencyPrincipal | None:
    """The agency a well-signed, unexpired token names, else None (its version is checked by AgencyPasswords)."""
    try:
        data = _serializer(keys).loads(token, max_age=max_age)
    except (BadSignature, SignatureExpired):
        return None
    if not (isinstance(data, dict) and isinstance(data.get("a"), str) and isinstance(data.get("e"), str)
            and type(data.get("p")) is int):
        return None  # the shape of another release's token: its holder logs in again
    return AgencyPrincipal(agency_id=data["a"], email=data["e"], password_version=data["p"])


class AgencyPasswords:
    """Each agency's current password version (`agency_passwords`), kept by a service that serves the agency API
    from identity's `AgencyRegistered` and `AgencyPasswordChanged`; a token naming another version is not current."""

    # a token of an agency registered a moment ago may arrive before its registration: wait this long for it
    unknown_wait_seconds: float = 10.0

    def __init__(self, service_name: str, docs: DocStore) -> None:
        self.coll = docs.collection(CREDENTIALS)
        self.group = f"{service_name}.agency-passwords"

    async def on_registered(self, event: AgencyRegistered, env: Envelope) -> None:
        if await self.coll.get(event.agency_id) is None:  # the group's single writer: no race here
            await self.coll.replace({"_id": event.agency_id, "password_version": 0})

    async def on_password_changed(self, event: AgencyPasswordChanged, env: Envelope) -> None:
        version = env.aggregateversion or 0
        known = await self.coll.get(event.agency_id)
        if known is None or known["password_version"] < version:
            await self.coll.replace({"_id": event.agency_id, "password_version": version})

    async def current(self, principal: AgencyPrincipal) -> bool:
        """Whether the token names the agency's current password version."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.unknown_wait_seconds
        while (known := await self.coll.get(principal.agency_id)) is None and loop.time() < deadline:
            await asyncio.sleep(0.1)
        return known is not None and known["password_version"] == principal.password_version

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(group=self.group, name=CREDENTIALS, topics=[IDENTITY_AGENCY], collections=[CREDENTIALS],
                            dedupe=False, handlers={AgencyRegistered.event_type(): self.on_registered,
                                                    AgencyPasswordChanged.event_type(): self.on_password_changed})


def _credentials(request: Request) -> AgencyPasswords:
    for service in request.app.state.host.services:
        credentials = getattr(service, "agency_credentials", None)
        if credentials is not None:
            return credentials
    raise RuntimeError("the agency API is served by a process without agency credentials")


async def current_agency(request: Request, token: Annotated[str | None, Depends(_scheme)]) -> AgencyPrincipal:
    """FastAPI dependency: the agency of a valid, current bearer token, or 401 problem+json."""
    principal = read_agency_token(request.app.state.host.runtime.keys.verifying, token) if token else None
    if principal is not None and not await _credentials(request).current(principal):
        principal = None  # issued for another password than the agency's current one
    if principal is None:
        raise HTTPException(401, "有効なアクセストークンが必要です。", headers={"WWW-Authenticate": "Bearer"})
    return principal


CurrentAgency = Annotated[AgencyPrincipal, Depends(current_agency)]
