"""Bearer tokens for the JSON API: signed and short-lived, verifiable by any service's API process.

A token names the agency it was issued to; every query a route makes is scoped by that agency id. It also
names the version of the agency's identity stream when it was issued: a service that serves the agency API
keeps the version of each agency's last password change (`AgencyCredentials`, read from identity's events),
and refuses a token issued before it. A password change or an operator's reset thus retires every token
issued until then, from the moment the service has read the change (seconds), not when the token expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ppa_contracts import Envelope
from ppa_contracts.identity import AgencyPasswordChanged
from ppa_contracts.topics import IDENTITY_AGENCY
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.docstore import DocStore

TOKEN_SECONDS = 3600
CREDENTIALS = "agency_credentials"
_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


class LoginLocked(Exception):
    """Too many failed logins for this account or address: wait before trying again."""


@dataclass(frozen=True)
class AgencyPrincipal:
    """The agency a request acts for."""

    agency_id: str
    email: str
    version: int = 0  # the agency's identity stream version when the token was issued


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="ppa.api.agency-token")


def issue_agency_token(secret: str, agency_id: str, email: str, version: int) -> str:
    """A signed bearer token for an agency whose identity stream is at `version`."""
    return _serializer(secret).dumps({"a": agency_id, "e": email, "v": version})


def read_agency_token(secret: str, token: str, max_age: int = TOKEN_SECONDS) -> AgencyPrincipal | None:
    """The agency a valid, unexpired token names, else None."""
    try:
        data = _serializer(secret).loads(token, max_age=max_age)
    except (BadSignature, SignatureExpired):
        return None
    return AgencyPrincipal(agency_id=data["a"], email=data["e"], version=data.get("v", 0))


class AgencyCredentials:
    """The version of each agency's last password change (`agency_credentials`), kept by a service that serves
    the agency API from identity's `AgencyPasswordChanged`; a token issued before it is no longer current."""

    def __init__(self, service_name: str, docs: DocStore) -> None:
        self.coll = docs.collection(CREDENTIALS)
        self.group = f"{service_name}.agency-credentials"

    async def on_password_changed(self, event: AgencyPasswordChanged, env: Envelope) -> None:
        version = env.aggregateversion or 0
        known = await self.coll.get(event.agency_id)
        if known is None or known["changed_at"] < version:  # the group's single writer: no race here
            await self.coll.replace({"_id": event.agency_id, "changed_at": version})

    async def current(self, principal: AgencyPrincipal) -> bool:
        """Whether the token was issued after the agency's last password change this service has read."""
        known = await self.coll.get(principal.agency_id)
        return known is None or principal.version >= known["changed_at"]

    def spec(self) -> ConsumerSpec:
        return ConsumerSpec(group=self.group, name=CREDENTIALS, topics=[IDENTITY_AGENCY], collections=[CREDENTIALS],
                            dedupe=False, handlers={AgencyPasswordChanged.event_type(): self.on_password_changed})


def _credentials(request: Request) -> AgencyCredentials:
    for service in request.app.state.host.services:
        credentials = getattr(service, "agency_credentials", None)
        if credentials is not None:
            return credentials
    raise RuntimeError("the agency API is served by a process without agency credentials")


async def current_agency(request: Request, token: Annotated[str | None, Depends(_scheme)]) -> AgencyPrincipal:
    """FastAPI dependency: the agency of a valid, current bearer token, or 401 problem+json."""
    principal = read_agency_token(request.app.state.host.runtime.settings.secret_key, token) if token else None
    if principal is not None and not await _credentials(request).current(principal):
        principal = None  # issued before the agency's password changed
    if principal is None:
        raise HTTPException(401, "有効なアクセストークンが必要です。", headers={"WWW-Authenticate": "Bearer"})
    return principal


CurrentAgency = Annotated[AgencyPrincipal, Depends(current_agency)]
