"""Server-side sessions for the pages: the cookie holds a random id, the store keeps only its hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from ppa_runtime.docstore import Collection

SESSIONS = "sessions"
ANONYMOUS_TTL = timedelta(hours=2)
SIGNED_IN_TTL = timedelta(hours=8)
IDLE_TOUCH = timedelta(minutes=1)


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Anonymous sessions (for the CSRF token of a login form) and signed-in ones."""

    def __init__(self, coll: Collection) -> None:
        self.coll = coll

    async def setup(self) -> None:
        await self.coll.ensure_index("principal")

    async def open(self, kind: str = "anonymous", principal: str | None = None, *, ttl: timedelta | None = None,
                   idle: timedelta | None = None, **data: Any) -> tuple[str, dict]:
        """A new session; returns the cookie value and the stored session.

        `ttl` overrides the kind's lifetime; with `idle` the session also ends after that long unused.
        """
        session_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        ttl = ttl or (ANONYMOUS_TTL if kind == "anonymous" else SIGNED_IN_TTL)
        doc = {"_id": _key(session_id), "kind": kind, "principal": principal, "csrf": secrets.token_urlsafe(32),
               "expires_at": (now + ttl).isoformat(), **data}
        if idle is not None:
            doc |= {"idle_seconds": int(idle.total_seconds()), "idle_until": (now + idle).isoformat()}
        await self.coll.insert(doc)
        return session_id, doc

    async def get(self, session_id: str | None) -> dict | None:
        """The live session for a cookie value, else None (expired ones are removed)."""
        if not session_id:
            return None
        doc = await self.coll.get(_key(session_id))
        if doc is None:
            return None
        now = datetime.now(UTC)
        idle_until = datetime.fromisoformat(doc["idle_until"]) if doc.get("idle_until") else None
        if datetime.fromisoformat(doc["expires_at"]) < now or (idle_until is not None and idle_until < now):
            await self.coll.delete({"_id": doc["_id"]})
            return None
        if idle_until is not None:
            idle = timedelta(seconds=doc["idle_seconds"])
            if idle_until - now < idle - IDLE_TOUCH:  # written at most once a minute per session
                doc["idle_until"] = (now + idle).isoformat()
                await self.coll.update({"_id": doc["_id"]}, {"$set": {"idle_until": doc["idle_until"]}})
        return doc

    async def close(self, session_id: str | None) -> None:
        """End a session (logout)."""
        if session_id:
            await self.coll.delete({"_id": _key(session_id)})
