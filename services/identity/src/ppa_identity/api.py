"""Identity's JSON API: the OAuth2 password grant for agencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from ppa_identity.throttle import LOCKED
from ppa_runtime.auth import TOKEN_SECONDS, LoginLocked, issue_agency_token
from ppa_runtime.http import Problem
from ppa_runtime.openapi import problems


def client_ip(request: Request) -> str:
    """The peer address (a proxy in front must be trusted explicitly before X-Forwarded-For is)."""
    return request.client.host if request.client else "unknown"


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = TOKEN_SECONDS


def router(service) -> APIRouter:
    """Routes bound to an IdentityService."""
    r = APIRouter(prefix="/api/v1/auth", tags=["auth"])

    @r.post("/token", response_model=TokenPublic, summary="Agency access token (OAuth2 password grant)",
            operation_id="issueToken", openapi_extra={"security": []},  # the one operation open to anyone
            responses=problems(
                401, 429, s401="Wrong e-mail or password",
                s429="Too many failed logins from this address for this account, or for the account as a whole: "
                     "wait and try again"))
    async def token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenPublic:
        try:
            agency = await service.login_agency(form.username, form.password, client_ip(request))
        except LoginLocked as exc:
            raise Problem(429, "Too Many Requests", LOCKED) from exc
        if agency is None:
            raise Problem(401, "Unauthorized", "販売店IDまたはパスワードが正しくありません。")
        return TokenPublic(access_token=issue_agency_token(service.runtime.keys.verifying, agency.agency_id,
                                                             agency.email, agency.password_version))

    return r
