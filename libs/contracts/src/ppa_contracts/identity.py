"""Events of the identity service."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ppa_contracts.base import Payload
from ppa_contracts.topics import IDENTITY_AGENCY


class AgencyProfile(BaseModel):
    """An agency's registered profile (never the password)."""

    model_config = ConfigDict(frozen=True)

    company: str
    name: str = ""
    name_kana: str = ""
    postal_code: str = ""
    prefecture: str = ""
    city: str = ""
    street: str = ""
    phone: str = ""


class AgencyEvent(Payload):
    event_service: ClassVar[str] = "identity"
    event_topic: ClassVar[str] = IDENTITY_AGENCY


class AgencySignupRequested(AgencyEvent):
    """Someone asked for a sign-up link for this e-mail (the link itself travels on notify's topic).

    No agency exists yet: the key (subject) is the sign-up id, which `AgencyRegistered` repeats.
    """

    event_name: ClassVar[str] = "agency_signup_requested"
    email: str
    expires_at: datetime = Field(description="The link works until this moment (one hour after the request).")
    signup_id: str = Field("", description="This request's id; the agency registered through it names it.")


class AgencyRegistered(AgencyEvent):
    """An agency account exists; its e-mail is its agency ID."""

    event_name: ClassVar[str] = "agency_registered"
    agency_id: str
    email: str
    profile: AgencyProfile
    signup_id: str | None = Field(None, description="The sign-up request it completed; None when created directly.")


class AgencyProfileChanged(AgencyEvent):
    """The agency edited its profile."""

    event_name: ClassVar[str] = "agency_profile_changed"
    agency_id: str
    profile: AgencyProfile


class AgencyPasswordChanged(AgencyEvent):
    """The agency changed its password (the password itself never travels)."""

    event_name: ClassVar[str] = "agency_password_changed"
    agency_id: str
