"""Helpers shared by tests (importable: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from ppa_runtime.settings import Settings


def make_settings(kind: str, tmp_path: Path, servers: dict[str, str] | None = None, **extra) -> Settings:
    """Settings isolated to one test: own data dir, own topic and database namespace."""
    fields: dict = {
        "data_dir": tmp_path / "data",
        "namespace": f"t{uuid.uuid4().hex[:10]}_",
        "consumer_backoff_seconds": 0.01,
        "consumer_max_attempts": 3,
        "sqlite_synchronous": "NORMAL",
        "log_json": True,
        **extra,
    }
    if kind == "distributed":
        assert servers is not None
        fields["kafka_bootstrap_servers"] = servers["kafka"]
        fields["mongodb_uri"] = servers["mongo"]
    return Settings(**fields)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a subprocess the same settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")}
    env.update({
        "PPA_DATA_DIR": str(settings.data_dir),
        "PPA_NAMESPACE": settings.namespace,
        "PPA_CONSUMER_BACKOFF_SECONDS": str(settings.consumer_backoff_seconds),
        "PPA_SQLITE_SYNCHRONOUS": settings.sqlite_synchronous,
    })
    if settings.distributed:
        env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers or ""
        env["MONGODB_URI"] = settings.mongodb_uri or ""
    return env
