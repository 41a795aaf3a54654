"""structlog set-up: JSON lines, correlation ids, and secrets redacted before anything is written."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

SECRET_KEYS = frozenset(
    {"password", "password_confirm", "auth_code", "token", "access_token", "secret", "secret_key",
     "link", "signup_link", "reset_link", "csrf", "csrf_token", "cookie", "authorization"}
)


def redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Replace the value of any secret-looking key, however deep."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ("***" if k.lower() in SECRET_KEYS else clean(v)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return {k: ("***" if k.lower() in SECRET_KEYS else clean(v)) for k, v in event.items()}


class _Stderr:
    """Whatever `sys.stderr` is at write time (a test runner or a daemon may swap it after configure)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "INFO", json: bool = True) -> None:
    """Configure structlog and the standard library logging to emit one JSON object per line."""
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),
        cache_logger_on_first_use=False,
    )
    # Standard-library records (uvicorn, aiokafka, pymongo) go through the same processors and renderer.
    handler = logging.StreamHandler(_Stderr())
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
        logging.getLogger(name).setLevel(logging.NOTSET)
    for noisy in ("aiokafka", "pymongo", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
