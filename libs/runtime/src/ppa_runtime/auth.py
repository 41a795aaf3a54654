"""Bearer tokens for the JSON API: signed and short-lived, verifiable by any service's API process.

A token names the agency it was issued to; every query a route makes is scoped by that agency id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

TOKEN_SECONDS = 3600
_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


class LoginLocked(Exception):
    """Too many failed logins for this account or address: wait before trying again."""


@dataclass(frozen=True)
class AgencyPrincipal:
    """The agency a request acts for."""

    agency_id: str
    email: str


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="ppa.api.agency-token")


def issue_agency_token(secret: str, agency_id: str, email: str) -> str:
    """A signed bearer token for an agency."""
    return _serializer(secret).dumps({"a": agency_id, "e": email})


def read_agency_token(secret: str, token: str, max_age: int = TOKEN_SECONDS) -> AgencyPrincipal | None:
    """The agency a valid, unexpired token names, else None."""
    try:
        data = _serializer(secret).loads(token, max_age=max_age)
    except (BadSignature, SignatureExpired):
        return None
    return AgencyPrincipal(agency_id=data["a"], email=data["e"])


async def current_agency(request: Request, token: Annotated[str | None, Depends(_scheme)]) -> AgencyPrincipal:
    """FastAPI dependency: the agency of the bearer token, or 401 problem+json."""
    principal = read_agency_token(request.app.state.host.runtime.settings.secret_key, token) if token else None
    if principal is None:
        raise HTTPException(401, "有効なアクセストークンが必要です。", headers={"WWW-Authenticate": "Bearer"})
    return principal


CurrentAgency = Annotated[AgencyPrincipal, Depends(current_agency)]
