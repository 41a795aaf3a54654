"""structlog set-up: JSON lines, correlation ids, and secrets redacted before anything is written.

A warning or error that repeats (a broker away: every client retries many times a second) is written once, then
once per REPEAT_SECONDS with how many times it came meanwhile (`repeated`) and for how long it has been coming
(`for_seconds`), by `Repeats`; a process's host flushes the counts of those that stopped (`flush_repeats`).
Expected start-up noise of the Kafka client (no group coordinator yet) is below the level written.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError

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


REPEAT_SECONDS = 30.0
# errors the Kafka client logs while a group coordinator is being chosen (every start, every new group): retried
# by the client until they pass, and a group that never gets one shows as not ready
EXPECTED_AT_START = (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError)


@dataclass
class _Run:
    """One kind of line while it keeps coming."""

    first: float  # when it began to come
    window: float  # when the last line of it was written
    last: float  # when it last came
    held: int = 0  # how often it came since the last line written
    logger: str = ""
    level: int = logging.WARNING
    message: str = ""
    context: dict[str, Any] | None = None  # a structlog line's other fields, as it last came


class Repeats:
    """Per kind of line (logger, level and message template or event name): the first passes; the next ones within
    `interval` are counted instead; the first after it passes with `repeated` (the count) and `for_seconds`."""

    def __init__(self, interval: float = REPEAT_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.runs: dict[tuple, _Run] = {}

    def admit(self, key: tuple, logger: str, level: int, message: str) -> dict[str, Any] | None:
        """The fields to add to a line that is written, None for one that is only counted."""
        now = self.clock()
        run = self.runs.get(key)
        if run is None or (not run.held and now - run.last > self.interval):  # new, or after a quiet interval
            self.runs[key] = _Run(now, now, now, 0, logger, level, message)
            return {}
        run.last, run.message = now, message
        if now - run.window < self.interval:
            run.held += 1
            return None
        fields = {"repeated": run.held, "for_seconds": round(now - run.first)}
        run.window, run.held = now, 0
        return fields

    def due(self) -> list[tuple[_Run, dict[str, Any]]]:
        """Runs whose counted lines waited a whole interval (the line stopped coming meanwhile, or it comes too
        seldom to carry them): what to write for each; ended runs are forgotten."""
        now = self.clock()
        out = []
        for key, run in list(self.runs.items()):
            if run.held and now - run.window >= self.interval:
                out.append((run, {"repeated": run.held, "for_seconds": round(run.last - run.first),
                                  "last_seconds_ago": round(now - run.last)}))
                run.window, run.held = now, 0
            elif not run.held and now - run.last > self.interval:
                del self.runs[key]
        return out


REPEATS = Repeats()
_SUMMARY = "_ppa_repeat_summary"  # marks a line `flush` writes itself: never counted again


def _gate_structlog(_: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: our own warnings and errors through REPEATS."""
    if event.pop(_SUMMARY, False):
        return event
    level = logging.getLevelName(method.upper())
    if not isinstance(level, int) or level < logging.WARNING:
        return event
    key = ("structlog", level, event.get("event"))
    fields = REPEATS.admit(key, "structlog", level, str(event.get("event")))
    REPEATS.runs[key].context = {k: v for k, v in event.items() if k not in ("event", "level")}
    if fields is None:
        raise structlog.DropEvent
    event.update(fields)
    return event


class _GateStdlib(logging.Filter):
    """Standard-library records (aiokafka, pymongo, uvicorn): expected start-up noise down to INFO, then warnings
    and errors through REPEATS, by logger and message template."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY, False):
            return True
        if record.levelno >= logging.WARNING and any(isinstance(a, EXPECTED_AT_START) for a in _args(record)):
            record.levelno, record.levelname = logging.INFO, "INFO"
            if not logging.getLogger(record.name).isEnabledFor(logging.INFO):
                return False
        if record.levelno < logging.WARNING:
            return True
        fields = REPEATS.admit((record.name, record.levelno, str(record.msg)), record.name, record.levelno,
                               record.getMessage())
        if fields is None:
            return False
        for name, value in fields.items():
            setattr(record, name, value)
        return True


def _args(record: logging.LogRecord) -> tuple:
    return record.args if isinstance(record.args, tuple) else ()


def flush() -> int:
    """Write the counts REPEATS holds for lines that stopped coming; returns how many lines that took."""
    due = REPEATS.due()
    for run, fields in due:
        if run.logger == "structlog":
            structlog.get_logger("ppa_runtime.logging").log(run.level, run.message,
                                                            **{**(run.context or {}), **fields, _SUMMARY: True})
        else:
            logging.getLogger(run.logger).log(run.level, "%s", run.message, extra={**fields, _SUMMARY: True})
    return len(due)


async def flush_repeats(stop: asyncio.Event) -> None:
    """A process's loop that writes held counts once their interval is over (see `Repeats.due`)."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), max(REPEATS.interval / 4, 0.05))
        except TimeoutError:
            flush()
    flush()


class _Stderr:
    """Whatever `sys.stderr` is at write time (a test runner or a daemon may swap it after configure)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "INFO", json: bool = True, repeat_seconds: float = REPEAT_SECONDS) -> None:
    """Configure structlog and the standard library logging to emit one JSON object per line."""
    REPEATS.interval = repeat_seconds
    REPEATS.runs.clear()
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _gate_structlog,
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
                           structlog.stdlib.ExtraAdder(allow=("repeated", "for_seconds", "last_seconds_ago")),
                           _add_logger_name, structlog.processors.TimeStamper(fmt="iso", utc=True)],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer],
    ))
    handler.addFilter(_GateStdlib())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
        logging.getLogger(name).setLevel(logging.NOTSET)
    for noisy in ("aiokafka", "pymongo", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _add_logger_name(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """A client library's line says whose it is (aiokafka.client, pymongo.topology...)."""
    record = event.get("_record")
    if record is not None:
        event.setdefault("logger", record.name)
    return event
