"""Owner accounts: registration, login, お客様情報, products and password reset by e-mail link.

Every command reads the owner's stream, decides, and appends at the version it read, so a
concurrent edit is retried against the new state and a refused command stores nothing. A reset
link's token is random and never stored: its SHA-256 finds the reset (an insert-only document),
and the owner's stream says whether that reset is still open, so the link works once, for an hour,
and no longer once any new password is set. The link travels only in the `EmailRequested`.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import structlog

from ppa_contracts.notify import EmailRequested, EmailTemplate
from ppa_contracts.owner import (
    AgencyAccessGranted,
    AgencyAccessWithdrawn,
    OwnerHomeAttached,
    OwnerHomeDetached,
    OwnerPasswordChanged,
    OwnerPasswordResetRequested,
    OwnerProfile,
    OwnerProfileChanged,
    OwnerRegistered,
    Product,
    ProductChanged,
    ProductRegistered,
)
from ppa_identity.domain.owner import (
    HomeProof,
    InvalidOwnerForm,
    Owner,
    OwnerHomeProved,
    OwnerCredentialSet,
    OwnerEmailChangeRequested,
    OwnerEmailChangeUsed,
    OwnerEmailClaimed,
    OwnerRegistrationRequested,
    OwnerRegistrationUsed,
    changed_fields,
    claimant,
    email_error,
    email_stream,
    fold,
    normalize_email,
    password_errors,
    product_from_form,
    registration_from_form,
    reset_usable,
    serial_taken,
    stream_for,
)
from ppa_identity.passwords import hash_password, verify_password
from ppa_identity.throttle import RequestLimit
from ppa_runtime.docstore import DuplicateKey
from ppa_runtime.eventstore import ConcurrencyConflict

log = structlog.get_logger(__name__)

RESET_TTL = timedelta(hours=1)
REGISTRATION_TTL = timedelta(hours=1)
EMAIL_CHANGE_TTL = timedelta(hours=1)
OWNER_RESETS = "owner_resets"
OWNER_RESET_REQUESTS = "owner_reset_requests"
OWNER_REGISTRATIONS = "owner_registrations"
OWNER_EMAIL_CHANGES = "owner_email_change_requests"
FAILED_HOME_PROOFS = "owner_failed_home_proofs"
PRODUCT_NUMBERS = "owner_product_numbers"
EMAIL_TAKEN = "このメールアドレスは既に登録されています。"
SERIAL_TAKEN = "このシステム製造番号の製品は登録済みです。"
ATTEMPTS = 3
OWNER_AGENCY_ASKS = "owner_agency_asks"  # requests made again (each mails the agency): one per agency a window


class RequestsThrottled(Exception):
    """Too many registrations or reset mails were asked for from this address or client recently."""


class ResetLinkRefused(Exception):
    """The reset link is unknown, used, superseded or expired."""


class HomeAlreadyAttached(Exception):
    """The owner sees this customer's device already."""


class ProductNotFound(LookupError):
    """The owner has no product with this id."""


class EmailTaken(Exception):
    """Another owner uses this e-mail address."""


class EmailChangeLinkRefused(Exception):
    """The e-mail change link cannot be used: `reason` is unknown, expired, used or registered."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RegistrationLinkRefused(Exception):
    """The registration link cannot complete a registration: `reason` is unknown, expired, used or registered."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _token_key(token: str) -> str:
    """What a one-time link's token is stored and found by (the token itself never is)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _email_change_stream(token: str) -> str:
    return "owner-email-change:" + _token_key(token)


def _registration_stream(token: str) -> str:
    return "owner-registration:" + _token_key(token)


def not_an_agency(email: str) -> str:
    """The refusal of an address that is not a registered agency's."""
    return f"{email} は登録されている販売店・業者様のメールアドレスではありません。販売店・業者様の販売店IDをご確認ください。"


class OwnerAccounts:
    """Owner commands and queries on top of the identity service's event store."""

    def __init__(self, service, clock: Callable[[], datetime] | None = None) -> None:
        self.service = service
        self.resets = service.docs.collection(OWNER_RESETS)
        self.numbers = service.docs.collection(PRODUCT_NUMBERS)
        # every request counts, not only failures: 5 per address in 15 minutes, 20 resets / 50 sign-ups per client
        self.reset_requests = RequestLimit(service.docs.collection(OWNER_RESET_REQUESTS))
        self.registrations = RequestLimit(service.docs.collection(OWNER_REGISTRATIONS), per_ip=50)
        # e-mail change links: 5 per owner and 5 per target address in 15 minutes
        self.email_changes = RequestLimit(service.docs.collection(OWNER_EMAIL_CHANGES), per_account=5, per_ip=5)
        # keys: the (owner, agency) pair, and the owner over every agency
        self.agency_asks = RequestLimit(service.docs.collection(OWNER_AGENCY_ASKS), per_account=1, per_ip=5)
        # wrong serial / auth code pairs: 5 per owner and 20 per client in 15 minutes (the owner is signed in:
        # nobody else can spend its attempts)
        self.home_proofs = RequestLimit(service.docs.collection(FAILED_HOME_PROOFS))
        self.clock = clock or (lambda: datetime.now(UTC))

    async def setup(self) -> None:
        await self.home_proofs.setup()
        await self.reset_requests.setup()
        await self.registrations.setup()
        await self.email_changes.setup()
        await self.agency_asks.setup()

    # --- reading ------------------------------------------------------------------------------

    async def load(self, owner_id: str) -> Owner | None:
        """The owner with this id, folded from its stream."""
        return fold([e.payload() for e in await self.service.events.read(stream_for(owner_id))])

    async def find_by_email(self, email: str) -> Owner | None:
        """The owner who uses this address now."""
        email = normalize_email(email)
        if not email:
            return None
        holder = claimant([e.payload() for e in await self.service.events.read(email_stream(email))])
        owner = await self.load(holder) if holder else None
        return owner if owner is not None and owner.email == email else None

    async def grants_agency(self, owner_id: str, agency_email: str) -> bool:
        """True while the owner lists this agency's e-mail."""
        owner = await self.load(owner_id)
        return owner is not None and normalize_email(agency_email) in owner.profile.agency_emails

    # --- registration and login -----------------------------------------------------------------

    async def request_registration(self, values: Mapping[str, str], password: str, confirmation: str,
                                   ip: str) -> None:
        """新規会員登録 from the page: check the form, then mail a one-hour link that completes it.

        An address that is an owner's already gets a "you are registered" note instead; the caller learns
        nothing about which of the two happened, and both take the password hashing's time.
        """
        profile = registration_from_form(values, password, confirmation)
        if await self.registrations.locked(profile.email, ip):
            raise RequestsThrottled()
        await self.registrations.failed(profile.email, ip)
        password_hash = hash_password(password)
        registration_id = uuid.uuid4().hex
        public = self.service.settings.public_url.rstrip("/")
        if await self.find_by_email(profile.email) is not None:
            await self.service.record(
                f"owner-registration-notice:{registration_id}", 0,
                EmailRequested(message_id=f"owner-registration-registered-{registration_id}",
                               template=EmailTemplate.OWNER_REGISTRATION_ALREADY_REGISTERED,
                               recipient=profile.email, context={"login_id": profile.email}),
                subject=registration_id)
            log.info("owner_registration_for_registered_address", registration_id=registration_id)
            return
        token = secrets.token_urlsafe(32)
        expires_at = self.clock() + REGISTRATION_TTL
        await self.service.record(
            _registration_stream(token), 0,
            OwnerRegistrationRequested(registration_id=registration_id, profile=profile, password_hash=password_hash,
                                       expires_at=expires_at),
            EmailRequested(message_id=f"owner-registration-{registration_id}",
                           template=EmailTemplate.OWNER_REGISTRATION_LINK, recipient=profile.email,
                           context={"registration_url": f"{public}/mypage/register/{token}",
                                    "expires_at": expires_at.isoformat()}),
            subject=registration_id)
        log.info("owner_registration_requested", registration_id=registration_id)

    async def registration_link(self, token: str) -> OwnerRegistrationRequested:
        """The waiting registration of a link that can still complete it; else raises RegistrationLinkRefused."""
        return (await self._registration(token))[0]

    async def _registration(self, token: str) -> tuple[OwnerRegistrationRequested, int]:
        events = []
        if 20 <= len(token) <= 100:
            events = [e.payload() for e in await self.service.events.read(_registration_stream(token))]
        requested = next((e for e in events if isinstance(e, OwnerRegistrationRequested)), None)
        if requested is None:
            raise RegistrationLinkRefused("unknown")
        if any(isinstance(e, OwnerRegistrationUsed) for e in events):
            raise RegistrationLinkRefused("used")
        if self.clock() >= requested.expires_at:
            raise RegistrationLinkRefused("expired")
        return requested, len(events)

    async def complete_registration(self, token: str) -> Owner:
        """Follow the mailed link: the owner exists from now on (the link is used up first, so only once)."""
        requested, version = await self._registration(token)
        owner_id = uuid.uuid4().hex
        try:
            await self.service.record(_registration_stream(token), version,
                                      OwnerRegistrationUsed(registration_id=requested.registration_id,
                                                            owner_id=owner_id),
                                      subject=requested.registration_id)
        except ConcurrencyConflict:
            raise RegistrationLinkRefused("used") from None
        try:
            return await self._create(owner_id, requested.profile, requested.password_hash)
        except InvalidOwnerForm:
            raise RegistrationLinkRefused("registered") from None

    async def register(self, values: Mapping[str, str], password: str, confirmation: str, ip: str) -> Owner:
        """Create an owner account at once (operators' tools and tests; the page goes through the mailed link)."""
        profile = registration_from_form(values, password, confirmation)
        if await self.registrations.locked(profile.email, ip):
            raise RequestsThrottled()
        await self.registrations.failed(profile.email, ip)
        return await self._create(uuid.uuid4().hex, profile, hash_password(password))

    async def _create(self, owner_id: str, profile: OwnerProfile, password_hash: str) -> Owner:
        """The owner's first commit, with the welcome mail; InvalidOwnerForm when the address is taken."""
        try:
            await self._claim(owner_id, profile.email)
        except EmailTaken:
            raise InvalidOwnerForm({"email": EMAIL_TAKEN}) from None
        now = self.clock()
        registered = OwnerRegistered(owner_id=owner_id, profile=profile, registered_at=now)
        version = await self.service.record(
            stream_for(owner_id), 0, registered,
            OwnerCredentialSet(owner_id=owner_id, password_hash=password_hash),
            EmailRequested(message_id=f"owner-registered-{owner_id}", template=EmailTemplate.OWNER_REGISTERED,
                           recipient=profile.email, context={"owner_name": profile.name, "login_id": profile.email}),
            subject=owner_id)
        log.info("owner_registered", owner_id=owner_id)
        return Owner(owner_id, profile, now, password_hash, version)

    async def login(self, email: str, password: str, ip: str) -> Owner | None:
        """The owner when the password matches, else None; raises LoginLocked after too many failures."""
        account = f"owner:{normalize_email(email)}"
        throttle = self.service.throttle
        await throttle.check(account, ip)
        owner = await self.find_by_email(email)
        if verify_password(owner.password_hash if owner else None, password):
            await throttle.succeeded(account)
            return owner
        await throttle.failed(account, ip)
        return None

    async def _claim(self, owner_id: str, email: str) -> None:
        """Take the address for this owner; EmailTaken when another owner uses it."""
        for _ in range(ATTEMPTS):
            events = [e.payload() for e in await self.service.events.read(email_stream(email))]
            holder = claimant(events)
            if holder == owner_id:
                return
            if holder is not None and (other := await self.load(holder)) is not None and other.email == email:
                raise EmailTaken(email)
            try:
                await self.service.record(email_stream(email), len(events), OwnerEmailClaimed(owner_id=owner_id),
                                          subject=owner_id)
                return
            except ConcurrencyConflict:
                continue
        raise EmailTaken(email)

    # --- お客様情報 -------------------------------------------------------------------------------

    def _as_allowed(self, owner: Owner, profile: OwnerProfile, account_changes: bool) -> OwnerProfile:
        if account_changes:
            return profile
        return profile.model_copy(update={"email": owner.email, "agency_emails": owner.profile.agency_emails})

    async def _grants(self, owner: Owner, new: OwnerProfile) -> list[AgencyAccessGranted]:
        """Grants for the added agency e-mails; InvalidOwnerForm naming each address that is no agency's."""
        grants, errors = await self._added_agencies(owner, new.agency_emails)
        if errors:
            raise InvalidOwnerForm(errors)
        return grants

    async def _added_agencies(self, owner: Owner, emails: Sequence[str]) -> tuple[list[AgencyAccessGranted],
                                                                                  dict[str, str]]:
        errors: dict[str, str] = {}
        grants = []
        for email in (e for e in emails if e not in owner.profile.agency_emails):
            agency = await self.service.agencies.load(email)
            if agency is None:
                errors[f"agency:{email}"] = not_an_agency(email)
            else:
                grants.append(AgencyAccessGranted(owner_id=owner.owner_id, agency_email=email,
                                                  agency_id=agency.agency_id))
        return grants, errors

    async def unknown_agencies(self, owner_id: str, emails: Sequence[str]) -> dict[str, str]:
        """The refusal of each added address that is no agency's: shown with the form's other errors, so the owner
        fixes everything at once (a form that failed its own checks never reaches `_grants`)."""
        owner = await self.load(owner_id)
        return {} if owner is None else (await self._added_agencies(owner, emails))[1]

    async def ask_again(self, owner_id: str, agency_email: str) -> None:
        """Allow an agency on the list once more (after it declined, or ended, the link): a new grant, so
        linking opens a new request and mails the agency. Throttled (RequestsThrottled): one request per agency,
        and a few over all agencies, in the throttle's window. LookupError when the address is not one the owner
        allows. A grant while a request is pending or the link approved opens nothing (linking's rule), so the
        page offers this after a rejection or an end only."""
        email = normalize_email(agency_email)
        for _ in range(ATTEMPTS):
            owner = await self.load(owner_id)
            if owner is None or email not in owner.profile.agency_emails:
                raise LookupError(agency_email)
            agency = await self.service.agencies.load(email)
            if agency is None:
                raise LookupError(agency_email)
            if await self.agency_asks.locked(f"{owner_id}:{email}", owner_id):
                raise RequestsThrottled()
            grant = AgencyAccessGranted(owner_id=owner_id, agency_email=email, agency_id=agency.agency_id)
            try:
                await self.service.record(stream_for(owner_id), owner.version, grant, subject=owner_id)
            except ConcurrencyConflict:
                continue
            await self.agency_asks.failed(f"{owner_id}:{email}", owner_id)  # counted once it is made
            log.info("owner_asked_agency_again", owner_id=owner_id, agency_id=agency.agency_id)
            return
        raise ConcurrencyConflict(stream_for(owner_id), -1)

    async def preview_profile(self, owner_id: str, profile: OwnerProfile, account_changes: bool = True) -> OwnerProfile:
        """The profile 確認する would store, after the checks that need other accounts; stores nothing."""
        owner = await self.load(owner_id)
        if owner is None:
            raise LookupError(owner_id)
        new = self._as_allowed(owner, profile, account_changes)
        await self._grants(owner, new)
        return new  # a new e-mail address is checked when its confirmation link is followed

    async def change_profile(self, owner_id: str, profile: OwnerProfile, account_changes: bool = True) -> Owner:
        """Replace お客様情報; added agency e-mails must be registered agencies, else nothing is stored.

        A new e-mail address is not taken at once: a one-hour link is mailed to it, and the address
        becomes the login ID when that link is followed (`confirm_email_change`). Without
        `account_changes` (a proxy session) the e-mail and the allowed agencies stay as they are.
        """
        for _ in range(ATTEMPTS):
            owner = await self.load(owner_id)
            if owner is None:
                raise LookupError(owner_id)
            wanted = self._as_allowed(owner, profile, account_changes)
            if wanted.email != owner.email and await self.email_changes.locked(owner_id, wanted.email):
                raise RequestsThrottled()
            new = wanted.model_copy(update={"email": owner.email})
            if new != owner.profile:
                grants = await self._grants(owner, new)
                removed = [e for e in owner.profile.agency_emails if e not in new.agency_emails]
                withdrawals = [AgencyAccessWithdrawn(owner_id=owner_id, agency_email=e,
                                                     agency_id=owner.agency_ids.get(e, "")) for e in removed]
                changed = OwnerProfileChanged(owner_id=owner_id, profile=new,
                                              changed=changed_fields(owner.profile, new))
                try:
                    await self.service.record(stream_for(owner_id), owner.version, changed, *grants, *withdrawals,
                                              subject=owner_id)
                except ConcurrencyConflict:
                    continue
                log.info("owner_profile_changed", owner_id=owner_id, granted=len(grants), withdrawn=len(withdrawals))
            if wanted.email != owner.email:
                await self._request_email_change(owner, wanted.email)
            return await self.load(owner_id) or owner
        raise ConcurrencyConflict(stream_for(owner_id), -1)

    async def _request_email_change(self, owner: Owner, new_email: str) -> None:
        await self.email_changes.failed(owner.owner_id, new_email)
        token = secrets.token_urlsafe(32)
        change_id = uuid.uuid4().hex
        expires_at = self.clock() + EMAIL_CHANGE_TTL
        url = f"{self.service.settings.public_url.rstrip('/')}/mypage/email/{token}"
        await self.service.record(
            _email_change_stream(token), 0,
            OwnerEmailChangeRequested(change_id=change_id, owner_id=owner.owner_id, old_email=owner.email,
                                      new_email=new_email, expires_at=expires_at),
            EmailRequested(message_id=f"owner-email-change-{change_id}", template=EmailTemplate.OWNER_EMAIL_CHANGE,
                           recipient=new_email, context={"confirm_url": url, "expires_at": expires_at.isoformat()}),
            subject=change_id)
        log.info("owner_email_change_requested", owner_id=owner.owner_id, change_id=change_id)

    async def email_change_link(self, token: str) -> OwnerEmailChangeRequested:
        """The change a link can still confirm; else raises EmailChangeLinkRefused."""
        return (await self._email_change(token))[0]

    async def _email_change(self, token: str) -> tuple[OwnerEmailChangeRequested, int]:
        events = []
        if 20 <= len(token) <= 100:
            events = [e.payload() for e in await self.service.events.read(_email_change_stream(token))]
        requested = next((e for e in events if isinstance(e, OwnerEmailChangeRequested)), None)
        if requested is None:
            raise EmailChangeLinkRefused("unknown")
        owner = await self.load(requested.owner_id)
        if any(isinstance(e, OwnerEmailChangeUsed) for e in events) or owner is None \
                or owner.email != requested.old_email:  # used, or another change came first
            raise EmailChangeLinkRefused("used")
        if self.clock() >= requested.expires_at:
            raise EmailChangeLinkRefused("expired")
        return requested, len(events)

    async def confirm_email_change(self, token: str) -> Owner:
        """Follow the mailed link: the new address becomes the login ID; the old address is told."""
        requested, version = await self._email_change(token)
        try:
            await self.service.record(_email_change_stream(token), version,
                                      OwnerEmailChangeUsed(change_id=requested.change_id), subject=requested.change_id)
        except ConcurrencyConflict:
            raise EmailChangeLinkRefused("used") from None
        owner_id = requested.owner_id
        try:
            await self._claim(owner_id, requested.new_email)
        except EmailTaken:
            raise EmailChangeLinkRefused("registered") from None
        for _ in range(ATTEMPTS):
            owner = await self.load(owner_id)
            if owner is None or owner.email != requested.old_email:
                raise EmailChangeLinkRefused("used")
            new = owner.profile.model_copy(update={"email": requested.new_email})
            try:
                await self.service.record(
                    stream_for(owner_id), owner.version,
                    OwnerProfileChanged(owner_id=owner_id, profile=new, changed=("email",)),
                    EmailRequested(message_id=f"owner-email-changed-{requested.change_id}",
                                   template=EmailTemplate.OWNER_EMAIL_CHANGED, recipient=requested.old_email,
                                   context={"owner_name": owner.profile.name, "new_email": requested.new_email}),
                    subject=owner_id)
            except ConcurrencyConflict:
                continue
            log.info("owner_email_changed", owner_id=owner_id, change_id=requested.change_id)
            return await self.load(owner_id) or owner
        raise ConcurrencyConflict(stream_for(owner_id), -1)

    # --- 製品情報 -------------------------------------------------------------------------------

    async def _next_product_id(self) -> str:
        """A short product number no other product has (insert-only, so two writers never share one)."""
        number = await self.numbers.count() + 1
        while True:
            try:
                await self.numbers.insert({"_id": str(number)})
                return str(number)
            except DuplicateKey:
                number += 1

    def _attach(self, owner_id: str, product_id: str, proof: HomeProof) -> list:
        return [OwnerHomeAttached(owner_id=owner_id, product_id=product_id, serial_number=proof.serial_number,
                                  agency_id=proof.agency_id, customer_number=proof.customer_number,
                                  attached_at=self.clock()),
                OwnerHomeProved(owner_id=owner_id, product_id=product_id, auth_code_hash=proof.auth_code_hash)]

    async def register_product(self, owner_id: str, values: Mapping[str, str], proof: HomeProof | None = None) -> Product:
        """Add a product to the owner's account; with a proof (its serial's auth code matched) it is a home too."""
        product = product_from_form("new", values)
        product_id = ""
        for _ in range(ATTEMPTS):
            owner = await self.load(owner_id)
            if owner is None:
                raise LookupError(owner_id)
            if serial_taken(owner, product):
                raise InvalidOwnerForm({"system_serial": SERIAL_TAKEN})
            product_id = product_id or await self._next_product_id()
            stored = product.model_copy(update={"product_id": product_id})
            try:
                await self.service.record(stream_for(owner_id), owner.version,
                                          ProductRegistered(owner_id=owner_id, product=stored),
                                          *(self._attach(owner_id, product_id, proof) if proof else ()),
                                          subject=owner_id)
            except ConcurrencyConflict:
                continue
            log.info("product_registered", owner_id=owner_id, product_id=product_id)
            return stored
        raise ConcurrencyConflict(stream_for(owner_id), -1)

    async def change_product(self, owner_id: str, product_id: str, values: Mapping[str, str],
                             proof: HomeProof | None = None) -> Product:
        """Edit one of the owner's products; ProductNotFound for anyone else's. A proof attaches it as a home (again);
        a changed serial without one detaches the home it was."""
        product = product_from_form(product_id, values)
        for _ in range(ATTEMPTS):
            owner = await self.load(owner_id)
            if owner is None or (current := owner.product(product_id)) is None:
                raise ProductNotFound(product_id)
            if current == product and proof is None:
                return product
            if serial_taken(owner, product):
                raise InvalidOwnerForm({"system_serial": SERIAL_TAKEN})
            events: list = [ProductChanged(owner_id=owner_id, product=product)] if current != product else []
            home = owner.homes.get(product_id)
            if proof is not None:
                events += self._attach(owner_id, product_id, proof)
            elif home is not None and home.serial_number != product.system_serial:
                events.append(OwnerHomeDetached(owner_id=owner_id, product_id=product_id,
                                                serial_number=home.serial_number, reason="serial_changed"))
            try:
                await self.service.record(stream_for(owner_id), owner.version, *events, subject=owner_id)
            except ConcurrencyConflict:
                continue
            log.info("product_changed", owner_id=owner_id, product_id=product_id)
            return product
        raise ConcurrencyConflict(stream_for(owner_id), -1)

    # --- password reset -------------------------------------------------------------------------

    async def attach_home_by_agency(self, owner_id: str, proof: HomeProof, agency_email: str,
                                    agency_name: str) -> str:
        """An agency with an approved link attaches its PPA customer's home; the owner is mailed. The new home's
        id, or HomeAlreadyAttached when the owner sees this customer's device already."""
        home_id = ""
        for _ in range(ATTEMPTS):
            owner = await self.load(owner_id)
            if owner is None:
                raise LookupError(owner_id)
            if any(h.serial_number == proof.serial_number and h.agency_id == proof.agency_id
                   and h.customer_number == proof.customer_number for h in owner.homes.values()):
                raise HomeAlreadyAttached(proof.serial_number)
            home_id = home_id or await self._next_product_id()
            attached = self._attach(owner_id, home_id, proof)
            attached[0] = attached[0].model_copy(update={"attached_by_agency": proof.agency_id})
            mail = EmailRequested(message_id=f"owner-home-attached-{owner_id}-{home_id}",
                                  template=EmailTemplate.OWNER_HOME_ATTACHED, recipient=owner.email,
                                  context={"owner_name": owner.profile.name, "agency_name": agency_name,
                                           "agency_email": agency_email, "serial_number": proof.serial_number})
            try:
                await self.service.record(stream_for(owner_id), owner.version, *attached, mail, subject=owner_id)
            except ConcurrencyConflict:
                continue
            log.info("owner_home_attached_by_agency", owner_id=owner_id, product_id=home_id,
                     agency_id=proof.agency_id)
            return home_id
        raise ConcurrencyConflict(stream_for(owner_id), -1)

    async def detach_home(self, owner_id: str, product_id: str) -> None:
        """The owner stops seeing the home's data; ProductNotFound when it is no home of the owner's."""
        for _ in range(ATTEMPTS):
            owner = await self.load(owner_id)
            if owner is None or (home := owner.homes.get(product_id)) is None:
                raise ProductNotFound(product_id)
            try:
                await self.service.record(stream_for(owner_id), owner.version, OwnerHomeDetached(
                    owner_id=owner_id, product_id=product_id, serial_number=home.serial_number, reason="owner"),
                    subject=owner_id)
            except ConcurrencyConflict:
                continue
            log.info("owner_home_detached", owner_id=owner_id, product_id=product_id)
            return
        raise ConcurrencyConflict(stream_for(owner_id), -1)

    async def request_reset(self, email: str, ip: str) -> None:
        """Mail a one-hour reset link when the address is an owner's; the caller learns nothing either way."""
        await self.mail_reset(await self.accept_reset_request(email, ip))

    async def accept_reset_request(self, email: str, ip: str) -> str:
        """Check the address's form and the throttle; the normalized address for `mail_reset`.

        The page answers after this and mails afterwards, so its timing cannot tell owners' addresses.
        """
        if message := email_error(email):
            raise InvalidOwnerForm({"email": message})
        email = normalize_email(email)
        if await self.reset_requests.locked(email, ip):
            raise RequestsThrottled()
        await self.reset_requests.failed(email, ip)
        return email

    async def mail_reset(self, email: str) -> None:
        """Record a reset and its mail when the address is an owner's; nothing otherwise."""
        owner = await self.find_by_email(email)
        if owner is None:
            log.info("owner_reset_unknown_address")
            return
        token = secrets.token_urlsafe(32)
        reset_id = uuid.uuid4().hex
        expires_at = self.clock() + RESET_TTL
        await self.resets.insert({"_id": _token_key(token), "owner_id": owner.owner_id, "reset_id": reset_id})
        url = f"{self.service.settings.public_url.rstrip('/')}/mypage/password/reset/{token}"
        for _ in range(ATTEMPTS):
            try:
                await self.service.record(
                    stream_for(owner.owner_id), owner.version,
                    OwnerPasswordResetRequested(owner_id=owner.owner_id, reset_id=reset_id, expires_at=expires_at),
                    EmailRequested(message_id=f"owner-reset-{reset_id}", template=EmailTemplate.OWNER_PASSWORD_RESET,
                                   recipient=owner.email,
                                   context={"reset_url": url, "expires_at": expires_at.isoformat()}),
                    subject=owner.owner_id)
                log.info("owner_password_reset_requested", owner_id=owner.owner_id, reset_id=reset_id)
                return
            except ConcurrencyConflict:
                owner = await self.load(owner.owner_id) or owner
        raise ConcurrencyConflict(stream_for(owner.owner_id), -1)

    async def reset_link(self, token: str) -> tuple[Owner, str]:
        """The owner and reset id of a usable link; raises ResetLinkRefused."""
        doc = await self.resets.get(_token_key(token)) if 20 <= len(token) <= 100 else None
        owner = await self.load(doc["owner_id"]) if doc else None
        if doc is None or owner is None or not reset_usable(owner, doc["reset_id"], self.clock()):
            raise ResetLinkRefused()
        return owner, doc["reset_id"]

    async def reset_password(self, token: str, password: str, confirmation: str) -> Owner:
        """Set a new password through the link (once); every session of the owner ends."""
        owner, reset_id = await self.reset_link(token)
        if errors := password_errors(password, confirmation):
            raise InvalidOwnerForm(errors)
        password_hash = hash_password(password)
        for _ in range(ATTEMPTS):
            try:
                await self.service.record(stream_for(owner.owner_id), owner.version,
                                          OwnerPasswordChanged(owner_id=owner.owner_id, reset_id=reset_id),
                                          OwnerCredentialSet(owner_id=owner.owner_id, password_hash=password_hash),
                                          subject=owner.owner_id)
                break
            except ConcurrencyConflict:
                owner, reset_id = await self.reset_link(token)  # refused if it was used meanwhile
        else:
            raise ConcurrencyConflict(stream_for(owner.owner_id), -1)
        await self.end_sessions(owner.owner_id)
        await self.service.throttle.succeeded(f"owner:{owner.email}")
        log.info("owner_password_changed", owner_id=owner.owner_id, reset_id=reset_id)
        return owner

    async def end_sessions(self, owner_id: str) -> int:
        """Sign the owner out everywhere."""
        return await self.service.sessions.coll.delete({"principal": owner_id, "kind": "owner"})
