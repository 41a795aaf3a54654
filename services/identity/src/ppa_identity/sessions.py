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


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Anonymous sessions (for the CSRF token of a login form) and signed-in ones."""

    def __init__(self, coll: Collection) -> None:
        self.coll = coll

    async def setup(self) -> None:
        await self.coll.ensure_index("principal")

    async def open(self, kind: str = "anonymous", principal: str | None = None, **data: Any) -> tuple[str, dict]:
        """A new session; returns the cookie value and the stored session."""
        session_id = secrets.token_urlsafe(32)
        ttl = ANONYMOUS_TTL if kind == "anonymous" else SIGNED_IN_TTL
        doc = {"_id": _key(session_id), "kind": kind, "principal": principal, "csrf": secrets.token_urlsafe(32),
               "expires_at": (datetime.now(UTC) + ttl).isoformat(), **data}
        await self.coll.insert(doc)
        return session_id, doc

    async def get(self, session_id: str | None) -> dict | None:
        """The live session for a cookie value, else None (expired ones are removed)."""
        if not session_id:
            return None
        doc = await self.coll.get(_key(session_id))
        if doc is None:
            return None
        if datetime.fromisoformat(doc["expires_at"]) < datetime.now(UTC):
            await self.coll.delete({"_id": doc["_id"]})
            return None
        return doc

    async def close(self, session_id: str | None) -> None:
        """End a session (logout)."""
        if session_id:
            await self.coll.delete({"_id": _key(session_id)})
