"""Login throttling per account and per client IP.

Failed attempts are inserted, never updated (insert is the one write a MongoDB-protocol server
keeps atomic under concurrency), and counted over a sliding window.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from ppa_runtime.docstore import Collection

FAILED_LOGINS = "failed_logins"
WINDOW = timedelta(minutes=15)
PER_ACCOUNT = 5
PER_IP = 20
LOCKED = "ログインに続けて失敗したため、一時的にログインできません。15分ほど待ってから再度お試しください。"


class LoginThrottle:
    """Refuses logins for an account or an IP after too many recent failures."""

    def __init__(self, coll: Collection, per_account: int = PER_ACCOUNT, per_ip: int = PER_IP) -> None:
        self.coll = coll
        self.per_account = per_account
        self.per_ip = per_ip

    async def setup(self) -> None:
        await self.coll.ensure_index("key", "at")

    async def _recent(self, key: str) -> int:
        since = (datetime.now(UTC) - WINDOW).isoformat()
        return await self.coll.count({"key": key, "at": {"$gte": since}})

    async def locked(self, account: str, ip: str) -> bool:
        """True when the account or the IP has failed too often within the window."""
        return (await self._recent(f"account:{account}") >= self.per_account
                or await self._recent(f"ip:{ip}") >= self.per_ip)

    async def failed(self, account: str, ip: str) -> None:
        """Record one failed attempt against both the account and the IP."""
        at = datetime.now(UTC).isoformat()
        await self.coll.insert_many([{"_id": uuid.uuid4().hex, "key": f"account:{account}", "at": at},
                                     {"_id": uuid.uuid4().hex, "key": f"ip:{ip}", "at": at}])

    async def succeeded(self, account: str) -> None:
        """A successful login clears the account's failures (not the IP's)."""
        await self.coll.delete({"key": f"account:{account}"})
