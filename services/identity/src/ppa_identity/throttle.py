"""Login throttling that cannot be turned against the account holder.

Failed attempts are inserted, never updated (insert is the one write a MongoDB-protocol server keeps atomic under
concurrency), and counted over a sliding window. Three counts, three answers:

- **one address guessing one account** (5 failures in 15 minutes): that address is refused for that account (429).
  Someone else's failures never refuse the holder, who logs in from an address of their own;
- **one address guessing many accounts** (20 failures): that address is refused for every account;
- **many addresses guessing one account** (more than 10 failures from anywhere): every attempt on the account is
  slowed down, a second more per further failure up to 10 seconds, before the password is checked. The holder
  still gets in, later; guessing from a thousand addresses gets a thousand times slower, not a thousand times more
  tries. The account holder is never locked out by strangers.

A successful login clears the account's failures (not the address's). `RequestLimit`, the plain count per key
that limits how often mails and links are asked for, lives here too.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from ppa_runtime.auth import LoginLocked
from ppa_runtime.docstore import Collection

FAILED_LOGINS = "failed_logins"
WINDOW = timedelta(minutes=15)
PER_ACCOUNT_AND_IP = 5
PER_IP = 20
SLOW_AFTER = 10  # failures of one account from anywhere before each attempt on it waits
SLOW_STEP_SECONDS = 1.0
SLOW_MAX_SECONDS = 10.0
LOCKED = "ログインに続けて失敗したため、一時的にログインできません。15分ほど待ってから再度お試しください。"


class RequestLimit:
    """How often one key (an owner, an address) and one second key (a client address, a mail address) may ask for
    something within the window (mails sent, links made): refused past either count."""

    def __init__(self, coll: Collection, per_account: int = PER_ACCOUNT_AND_IP, per_ip: int = PER_IP) -> None:
        self.coll = coll
        self.per_account = per_account
        self.per_ip = per_ip

    async def setup(self) -> None:
        await self.coll.ensure_index("key", "at")

    async def _recent(self, key: str) -> int:
        since = (datetime.now(UTC) - WINDOW).isoformat()
        return await self.coll.count({"key": key, "at": {"$gte": since}})

    async def locked(self, account: str, ip: str) -> bool:
        """True when either key has asked too often within the window."""
        return (await self._recent(f"account:{account}") >= self.per_account
                or await self._recent(f"ip:{ip}") >= self.per_ip)

    async def failed(self, account: str, ip: str) -> None:
        """Count one request against both keys."""
        at = datetime.now(UTC).isoformat()
        await self.coll.insert_many([{"_id": uuid.uuid4().hex, "key": f"account:{account}", "at": at},
                                     {"_id": uuid.uuid4().hex, "key": f"ip:{ip}", "at": at}])

    async def succeeded(self, account: str) -> None:
        """Forget the first key's requests (not the second's)."""
        await self.coll.delete({"key": f"account:{account}"})


class LoginThrottle:
    """Refuses an address after too many recent failures, and slows an account down that many addresses guess."""

    def __init__(self, coll: Collection, per_account: int = PER_ACCOUNT_AND_IP, per_ip: int = PER_IP,
                 slow_after: int = SLOW_AFTER, slow_step: float = SLOW_STEP_SECONDS) -> None:
        self.coll = coll
        self.per_account = per_account
        self.per_ip = per_ip
        self.slow_after = slow_after
        self.slow_step = slow_step

    async def setup(self) -> None:
        await self.coll.ensure_index("key", "at")

    async def _recent(self, key: str, **match: str) -> int:
        since = (datetime.now(UTC) - WINDOW).isoformat()
        return await self.coll.count({"key": key, "at": {"$gte": since}, **match})

    async def locked(self, account: str, ip: str) -> bool:
        """True when this address has failed too often for this account, or for any."""
        return (await self._recent(f"account:{account}", ip=ip) >= self.per_account
                or await self._recent(f"ip:{ip}") >= self.per_ip)

    async def delay(self, account: str) -> float:
        """How long an attempt on the account waits (seconds) for the failures from every address."""
        beyond = await self._recent(f"account:{account}") - self.slow_after
        return 0.0 if beyond < 0 else min((beyond + 1) * self.slow_step, SLOW_MAX_SECONDS)

    async def check(self, account: str, ip: str) -> None:
        """Before a password is checked: LoginLocked for a refused address, else wait as long as `delay` says."""
        if await self.locked(account, ip):
            raise LoginLocked()
        if wait := await self.delay(account):
            await asyncio.sleep(wait)

    async def failed(self, account: str, ip: str) -> int:
        """Record one failed attempt against the account (with its address) and the address; the account's count
        of recent failures from every address."""
        at = datetime.now(UTC).isoformat()
        await self.coll.insert_many([{"_id": uuid.uuid4().hex, "key": f"account:{account}", "ip": ip, "at": at},
                                     {"_id": uuid.uuid4().hex, "key": f"ip:{ip}", "at": at}])
        return await self._recent(f"account:{account}")

    async def succeeded(self, account: str) -> None:
        """A successful login clears the account's failures (not the address's)."""
        await self.coll.delete({"key": f"account:{account}"})
