"""Operator accounts: the platform's operations staff, who use the event dashboard (/ops).

Separate from agencies and owners: their own streams (`operator:<email>`), private events that are
never published, their own session kind. Created with `ppa operator create`, never by sign-up.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import structlog

from ppa_contracts import Payload
from ppa_identity.passwords import hash_password, verify_password
from ppa_runtime.eventstore import ConcurrencyConflict

if TYPE_CHECKING:
    from ppa_identity.service import IdentityService

log = structlog.get_logger(__name__)
EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}$")
MIN_PASSWORD = 10


class OperatorRegistered(Payload):
    """Private to identity: an operator account with its password hash. Stored, never published."""

    event_service: ClassVar[str] = "identity"
    event_name: ClassVar[str] = "operator_registered"
    event_topic: ClassVar[str | None] = None
    operator_id: str
    email: str
    password_hash: str


class OperatorExists(Exception):
    """An operator with this e-mail exists already."""


class InvalidOperator(ValueError):
    """The e-mail or password breaks a rule."""


@dataclass(frozen=True)
class Operator:
    """An operator folded from its stream."""

    operator_id: str
    email: str
    password_hash: str


def operator_stream(email: str) -> str:
    return f"operator:{email}"


class OperatorAccounts:
    """Creates and authenticates operators; login failures share identity's throttle, keyed apart."""

    def __init__(self, service: IdentityService) -> None:
        self.service = service

    async def create(self, email: str, password: str) -> str:
        """Register an operator; returns its id. Raises InvalidOperator or OperatorExists."""
        email = email.strip().lower()
        if not EMAIL.match(email):
            raise InvalidOperator("メールアドレスの形式が正しくありません。")
        if len(password) < MIN_PASSWORD or password.strip() != password:
            raise InvalidOperator(f"パスワードは前後に空白のない{MIN_PASSWORD}文字以上で入力してください。")
        operator_id = uuid.uuid4().hex
        event = OperatorRegistered(operator_id=operator_id, email=email, password_hash=hash_password(password))
        try:
            await self.service.record(operator_stream(email), 0, event, subject=operator_id)
        except ConcurrencyConflict as exc:
            raise OperatorExists(email) from exc
        log.info("operator_registered", operator_id=operator_id)
        return operator_id

    async def load(self, email: str) -> Operator | None:
        """The operator registered under this e-mail, if any."""
        operator = None
        for env in await self.service.events.read(operator_stream(email.strip().lower())):
            event = env.payload()
            if isinstance(event, OperatorRegistered):
                operator = Operator(event.operator_id, event.email, event.password_hash)
        return operator

    async def login(self, email: str, password: str, ip: str) -> Operator | None:
        """The operator when the password matches (same cost either way); LoginLocked after repeated failures."""
        email = email.strip().lower()
        account = f"operator:{email}"
        await self.service.throttle.check(account, ip)
        operator = await self.load(email) if email else None
        if verify_password(operator.password_hash if operator else None, password):
            await self.service.throttle.succeeded(account)
            return operator
        await self.service.throttle.failed(account, ip)
        return None
