"""The correlation id of the work in hand, carried from HTTP requests into every event they cause."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from collections.abc import Iterator

import structlog

_correlation: ContextVar[str | None] = ContextVar("correlation_id", default=None)
_causation: ContextVar[str | None] = ContextVar("causation_id", default=None)


def correlation_id() -> str:
    """The current correlation id, or a new one when nothing set it."""
    return _correlation.get() or uuid.uuid4().hex


def causation_id() -> str | None:
    """The id of the event being handled, if any."""
    return _causation.get()


@contextmanager
def correlated(correlation: str, causation: str | None = None) -> Iterator[None]:
    """Run a block under a correlation id (and the event that caused it)."""
    t1 = _correlation.set(correlation)
    t2 = _causation.set(causation)
    with structlog.contextvars.bound_contextvars(correlation_id=correlation):
        try:
            yield
        finally:
            _correlation.reset(t1)
            _causation.reset(t2)
