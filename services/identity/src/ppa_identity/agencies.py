"""Agency accounts: sign-up by e-mail link, profile and password changes.

A sign-up link's token is random and never stored: its SHA-256 names the sign-up stream
(`agency-signup:<hash>`), so a tampered token finds no stream. The link travels only in the
`EmailRequested` recorded in the same commit as `AgencySignupRequested`. Registration is one commit
on the agency's stream at version 0 that names the sign-up it completes: a second use of the link,
or a second link for the same address, collides on that version and is refused.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import structlog

from ppa_contracts.identity import AgencyPasswordChanged, AgencyProfileChanged, AgencyRegistered, AgencySignupRequested
from ppa_contracts.notify import EmailRequested, EmailTemplate
from ppa_identity.domain.agency import (
    Agency,
    AgencyCredentialSet,
    InvalidAgencyForm,
    SignupLink,
    SignupRefusal,
    email_error,
    fold,
    fold_signup,
    normalize_email,
    password_errors,
    signup_refusal,
    stream_for,
    validate_profile,
)
from ppa_identity.passwords import hash_password, verify_password
from ppa_identity.throttle import RequestLimit
from ppa_runtime.eventstore import ConcurrencyConflict

log = structlog.get_logger(__name__)

SIGNUP_TTL = timedelta(hours=1)
SIGNUP_DRAFTS = "agency_signup_drafts"
SIGNUP_REQUESTS = "agency_signup_requests"
TOKEN_BYTES = 32


class SignupLinkRefused(Exception):
    """The sign-up link cannot be used; `reason` says why."""

    def __init__(self, reason: SignupRefusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


class SignupThrottled(Exception):
    """Too many sign-up mails were asked for this address or from this client recently."""


class NoSignupDraft(Exception):
    """登録する was pressed without a confirmed form for this link in this session."""


def _signup_stream(token: str) -> str:
    return "agency-signup:" + hashlib.sha256(token.encode()).hexdigest()


class AgencyAccounts:
    """Agency sign-up, profile and password commands, on top of the identity service's event store."""

    def __init__(self, service, clock: Callable[[], datetime] | None = None) -> None:
        self.service = service
        self.drafts = service.docs.collection(SIGNUP_DRAFTS)
        # every request counts (not only failures): 5 mails per address, 20 per client in 15 minutes
        self.requests = RequestLimit(service.docs.collection(SIGNUP_REQUESTS))
        self.clock = clock or (lambda: datetime.now(UTC))

    async def setup(self) -> None:
        await self.requests.setup()
        await self.drafts.ensure_index("expires_at")

    async def load(self, email: str) -> Agency | None:
        """The agency registered under this e-mail."""
        return fold([e.payload() for e in await self.service.events.read(stream_for(email))])

    async def load_own(self, agency_id: str, email: str) -> Agency:
        """The signed-in agency itself; a session naming someone else's e-mail finds nothing."""
        agency = await self.load(email)
        if agency is None or agency.agency_id != agency_id:
            raise LookupError("no such agency")
        return agency

    # --- sign-up ---------------------------------------------------------------------------------

    async def request_signup(self, email: str, ip: str) -> None:
        """Mail a one-hour sign-up link, or a "you are registered, log in" note to an agency's address.

        The caller learns nothing about which of the two happened.
        """
        if message := email_error(email):
            raise InvalidAgencyForm({"email": message})
        email = normalize_email(email)
        if await self.requests.locked(email, ip):
            raise SignupThrottled()
        await self.requests.failed(email, ip)
        for _ in range(3):
            agency = await self.load(email)
            try:
                if agency is None:
                    await self._record_signup(email)
                else:
                    await self.service.record(stream_for(email), agency.version, EmailRequested(
                        message_id=f"agency-signup-registered-{uuid.uuid4().hex}",
                        template=EmailTemplate.AGENCY_SIGNUP_ALREADY_REGISTERED,
                        recipient=email, context={"agency_id": agency.email}), subject=agency.agency_id)
                return
            except ConcurrencyConflict:
                continue  # the agency's stream moved on (e.g. a profile edit): read it again
        raise ConcurrencyConflict(stream_for(email), -1)

    async def _record_signup(self, email: str) -> None:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        signup_id = uuid.uuid4().hex
        expires_at = self.clock() + SIGNUP_TTL
        url = f"{self.service.settings.public_url.rstrip('/')}/agency/signup/{token}"
        await self.service.record(
            _signup_stream(token), 0,
            AgencySignupRequested(email=email, expires_at=expires_at, signup_id=signup_id),
            EmailRequested(message_id=f"agency-signup-{signup_id}", template=EmailTemplate.AGENCY_SIGNUP_LINK,
                           recipient=email, context={"signup_url": url, "expires_at": expires_at.isoformat()}),
            subject=signup_id)
        log.info("agency_signup_requested", signup_id=signup_id)

    async def signup_link(self, token: str) -> SignupLink:
        """The link's facts when it can still register an agency; else raises SignupLinkRefused."""
        link = None
        if 20 <= len(token) <= 100:
            link = fold_signup([e.payload() for e in await self.service.events.read(_signup_stream(token))])
        agency = await self.load(link.email) if link else None
        if reason := signup_refusal(link, agency, self.clock()):
            raise SignupLinkRefused(reason)
        assert link is not None
        return link

    async def prepare_signup(self, token: str, draft_key: str, values: Mapping[str, str], password: str,
                             confirmation: str) -> dict:
        """Check the form (確認する) and keep it, password hashed, for 登録する; returns the draft."""
        link = await self.signup_link(token)
        errors: dict[str, str] = {}
        try:
            profile = validate_profile(values)
        except InvalidAgencyForm as exc:
            errors = exc.errors
        errors |= password_errors(password, confirmation)
        if errors:
            raise InvalidAgencyForm(errors)
        # abandoned forms (they hold a password hash) go once their link has expired
        await self.drafts.delete({"expires_at": {"$lt": self.clock().isoformat()}})
        draft = {"_id": draft_key, "stream": _signup_stream(token), "signup_id": link.signup_id,
                 "email": link.email, "profile": profile.model_dump(), "password_hash": hash_password(password),
                 "expires_at": link.expires_at.isoformat()}
        await self.drafts.replace(draft)
        return draft

    async def signup_draft(self, token: str, draft_key: str) -> dict | None:
        """The confirmed form of this link in this session, if any."""
        draft = await self.drafts.get(draft_key)
        return draft if draft is not None and draft["stream"] == _signup_stream(token) else None

    async def complete_signup(self, token: str, draft_key: str) -> Agency:
        """Register the agency from the confirmed form: one commit that also uses up the link."""
        link = await self.signup_link(token)
        draft = await self.signup_draft(token, draft_key)
        if draft is None:
            raise NoSignupDraft()
        agency_id = uuid.uuid4().hex
        registered = AgencyRegistered(agency_id=agency_id, email=link.email, profile=draft["profile"],
                                      signup_id=link.signup_id)
        try:
            version = await self.service.record(
                stream_for(link.email), 0, registered,
                AgencyCredentialSet(agency_id=agency_id, password_hash=draft["password_hash"]),
                EmailRequested(message_id=f"agency-registered-{agency_id}", template=EmailTemplate.AGENCY_REGISTERED,
                               recipient=link.email, context={"agency_id": link.email}),
                subject=agency_id)
        except ConcurrencyConflict:
            await self.signup_link(token)  # raises used / registered now that the stream exists
            raise
        await self.drafts.delete({"_id": draft_key})
        log.info("agency_registered", agency_id=agency_id, signup_id=link.signup_id)
        return Agency(agency_id, link.email, registered.profile, draft["password_hash"], version, link.signup_id)

    # --- profile and password -------------------------------------------------------------------

    async def change_profile(self, agency_id: str, email: str, values: Mapping[str, str]) -> Agency:
        """Replace the profile (same rules as sign-up); no event when nothing changed."""
        profile = validate_profile(values)
        for _ in range(3):
            agency = await self.load_own(agency_id, email)
            if profile == agency.profile:
                return agency
            try:
                version = await self.service.record(stream_for(email), agency.version,
                                                    AgencyProfileChanged(agency_id=agency_id, profile=profile),
                                                    subject=agency_id)
            except ConcurrencyConflict:
                continue
            log.info("agency_profile_changed", agency_id=agency_id)
            return Agency(agency.agency_id, agency.email, profile, agency.password_hash, version, agency.signup_id)
        raise ConcurrencyConflict(stream_for(email), -1)

    async def change_password(self, agency_id: str, email: str, current: str, new: str, confirmation: str,
                              ip: str) -> None:
        """Set a new password after checking the current one (throttled like a login)."""
        agency = await self.load_own(agency_id, email)
        await self.service.throttle.check(agency.email, ip)
        errors = password_errors(new, confirmation)
        if not current:
            errors["current_password"] = "現在のパスワードを入力してください。"
        elif not verify_password(agency.password_hash, current):
            await self.service.throttle.failed(agency.email, ip)
            errors["current_password"] = "現在のパスワードが正しくありません。"
        elif new and new == current:
            errors.setdefault("password", "新しいパスワードには現在と異なるパスワードを入力してください。")
        if errors:
            raise InvalidAgencyForm(errors)
        await self._store_password(agency, hash_password(new), by_operator=False)
        log.info("agency_password_changed", agency_id=agency_id)

    async def _store_password(self, agency: Agency, password_hash: str, by_operator: bool) -> None:
        """Record a new password hash and the mail that tells the agency, against the agency's latest stream if
        it changed meanwhile."""
        for _ in range(3):
            changed = agency.version + 1  # the version of AgencyPasswordChanged: one mail per change
            try:
                await self.service.record(
                    stream_for(agency.email), agency.version, AgencyPasswordChanged(agency_id=agency.agency_id),
                    AgencyCredentialSet(agency_id=agency.agency_id, password_hash=password_hash),
                    EmailRequested(message_id=f"agency-password-{agency.agency_id}-{changed}",
                                   template=EmailTemplate.AGENCY_PASSWORD_CHANGED, recipient=agency.email,
                                   context={"agency_id": agency.email, "changed_at": self.clock().isoformat(),
                                            "by_operator": by_operator}),
                    subject=agency.agency_id)
                return
            except ConcurrencyConflict:
                agency = await self.load_own(agency.agency_id, agency.email)  # e.g. a profile edit in between
        raise ConcurrencyConflict(stream_for(agency.email), -1)

    async def warn_of_failures(self, email: str, failures: int, window_minutes: int) -> None:
        """Mail the agency that logins to it keep failing (once per burst: the caller asks when the count of
        recent failures reaches the slow-down's threshold); nothing for an address that is no agency."""
        for _ in range(3):
            agency = await self.load(email)
            if agency is None:
                return
            try:
                await self.service.record(stream_for(agency.email), agency.version, EmailRequested(
                    message_id=f"agency-login-failures-{agency.agency_id}-{agency.version + 1}",
                    template=EmailTemplate.AGENCY_LOGIN_FAILURES, recipient=agency.email,
                    context={"agency_id": agency.email, "failures": failures, "window_minutes": window_minutes}),
                    subject=agency.agency_id)
                log.info("agency_login_failures_mailed", agency_id=agency.agency_id, failures=failures)
                return
            except ConcurrencyConflict:
                continue  # e.g. a profile edit in between: against the latest stream

    async def reset_password(self, email: str, new: str) -> str:
        """Set a password for an agency that forgot its own (the operator's command: no current password), and
        sign the agency out everywhere; its id. LookupError for an unknown address, InvalidAgencyForm for a
        password against the rule."""
        errors = password_errors(new, new)
        if errors:
            raise InvalidAgencyForm(errors)
        agency = await self.load(normalize_email(email))
        if agency is None:
            raise LookupError("no such agency")
        await self._store_password(agency, hash_password(new), by_operator=True)
        await self.service.throttle.succeeded(agency.email)  # the agency may log in with it at once
        ended = await self.end_other_sessions(agency.agency_id)
        log.info("agency_password_reset", agency_id=agency.agency_id, sessions_ended=ended)
        return agency.agency_id

    async def remember_company(self, session_key: str, company: str) -> None:
        """Show the new company name in the signed-in session's header at once."""
        await self.service.sessions.coll.update({"_id": session_key}, {"$set": {"company": company}})

    async def end_other_sessions(self, agency_id: str, keep_session_key: str | None = None) -> int:
        """Sign the agency out everywhere but here (after a password change), or everywhere (no session kept)."""
        flt: dict = {"principal": agency_id, "kind": "agency"}
        if keep_session_key is not None:
            flt["_id"] = {"$ne": keep_session_key}
        return await self.service.sessions.coll.delete(flt)

