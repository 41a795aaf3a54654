"""The install's signing keys: PPA_SECRET_KEY, else one generated for this install and kept in its data dir.

The source holds no key anyone could use. An embedded install (`ppa up` with SQLite) that was given no key
generates 48 random bytes on its first start and keeps them in `<data dir>/secret_key`, readable by its owner
only; later starts read the same file, so tokens survive a restart. Processes on Kafka + MongoDB share one key
across machines, which only the operator can hand them: Settings refuses to start them without PPA_SECRET_KEY.
PPA_SECRET_KEY_PREVIOUS (the key before a rotation) still verifies, never signs: see docs/security.md.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ppa_runtime.settings import MIN_SECRET_LENGTH, Settings

KEY_FILE = "secret_key"


@dataclass(frozen=True)
class SigningKeys:
    """The key that signs and the keys that verify; `source` says where the current one came from."""

    current: str
    previous: str | None
    source: str  # "PPA_SECRET_KEY" or the key file's path (never the key)
    generated: bool = False

    def __repr__(self) -> str:  # a repr in a log or traceback must not carry the keys
        return f"SigningKeys(source={self.source!r}, previous={self.previous is not None})"

    @property
    def verifying(self) -> list[str]:
        """Every key a signature may have been made with, the signing one last (itsdangerous' order)."""
        return [k for k in (self.previous, self.current) if k]


def signing_keys(settings: Settings) -> SigningKeys:
    """The keys of this install; the key file is created on the first start of an embedded install."""
    previous = settings.secret_key_previous.get_secret_value() if settings.secret_key_previous else None
    if settings.secret_key is not None:
        return SigningKeys(settings.secret_key.get_secret_value(), previous, "PPA_SECRET_KEY")
    path = settings.data_dir / KEY_FILE
    key, generated = _read_or_create(path)
    return SigningKeys(key, previous, str(path.resolve()), generated)


def _read_or_create(path: Path) -> tuple[str, bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # written whole under another name, then linked in place: two processes starting on one data dir at
        # once both end up with the key that was linked first, and neither ever reads a half-written file
        tmp = path.with_name(f".{KEY_FILE}.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(tmp, path)
            created = True
        except FileExistsError:
            created = False
        finally:
            tmp.unlink()
    else:
        created = False
    key = path.read_text(encoding="ascii").strip()
    if len(key) < MIN_SECRET_LENGTH:
        raise ValueError(f"{path} holds no usable key (delete it to generate a new one)")
    return key, created
