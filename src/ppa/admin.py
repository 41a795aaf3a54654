"""What the one-shot commands share: settings from the command line, and a started identity service."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from ppa_runtime import logging as ppa_logging
from ppa_runtime.runtime import Runtime
from ppa_runtime.settings import Settings

if TYPE_CHECKING:
    from ppa_identity.service import IdentityService


def settings_of(args: argparse.Namespace, served_at: str | None = None) -> Settings:
    """The platform settings, with `--data-dir` when the command has one; logging configured.

    `served_at` is the address this process serves pages on: the links it mails point there unless
    PPA_PUBLIC_URL names another (a proxy in front, a domain)."""
    overrides: dict[str, object] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if served_at and not os.environ.get("PPA_PUBLIC_URL"):
        overrides["public_url"] = served_at
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:  # e.g. no PPA_SECRET_KEY on Kafka + MongoDB: say so, not a traceback
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors(include_input=False))
        print(f"ppa: cannot start: {reasons}", file=sys.stderr)
        raise SystemExit(2) from None
    ppa_logging.configure(settings.log_level, settings.log_json, settings.log_repeat_seconds)
    return settings


def served_url(host: str, port: int) -> str:
    """The URL a browser elsewhere opens for a server bound to `host`: a wildcard address is this machine's name."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    return f"http://{host}:{port}"


@asynccontextmanager
async def identity_service(args: argparse.Namespace) -> AsyncIterator[IdentityService]:
    """The identity service on the configured runtime, started; the runtime is closed afterwards."""
    from ppa_identity.service import IdentityService

    runtime = await Runtime.open(settings_of(args))
    try:
        identity = IdentityService(runtime)
        await identity.start()
        yield identity
    finally:
        await runtime.close()
