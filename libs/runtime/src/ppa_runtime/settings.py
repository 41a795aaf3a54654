"""One settings object for every process, read from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-insecure-secret-key"


class Settings(BaseSettings):
    """Platform settings; `distributed` when both Kafka and MongoDB are configured."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    env: str = Field("dev", validation_alias=AliasChoices("PPA_ENV"))
    data_dir: Path = Field(Path(".ppa"), validation_alias=AliasChoices("PPA_DATA_DIR"))
    namespace: str = Field("", validation_alias=AliasChoices("PPA_NAMESPACE"))
    kafka_bootstrap_servers: str | None = Field(None, validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS"))
    mongodb_uri: str | None = Field(None, validation_alias=AliasChoices("MONGODB_URI"))
    secret_key: str = Field(DEV_SECRET, validation_alias=AliasChoices("PPA_SECRET_KEY"))
    public_url: str = Field("http://127.0.0.1:8000", validation_alias=AliasChoices("PPA_PUBLIC_URL"))
    smtp_host: str | None = Field(None, validation_alias=AliasChoices("SMTP_HOST"))
    smtp_port: int = Field(25, validation_alias=AliasChoices("SMTP_PORT"))
    log_level: str = Field("INFO", validation_alias=AliasChoices("LOG_LEVEL"))
    log_json: bool = Field(True, validation_alias=AliasChoices("PPA_LOG_JSON"))
    consumer_max_attempts: int = Field(5, validation_alias=AliasChoices("PPA_CONSUMER_MAX_ATTEMPTS"))
    consumer_backoff_seconds: float = Field(0.2, validation_alias=AliasChoices("PPA_CONSUMER_BACKOFF_SECONDS"))
    sqlite_synchronous: str = Field("FULL", validation_alias=AliasChoices("PPA_SQLITE_SYNCHRONOUS"))
    # a consumer group with lag and no commit for this long is shown as stalled on /ops/health
    ops_stall_seconds: float = Field(60.0, validation_alias=AliasChoices("PPA_OPS_STALL_SECONDS"))
    # how often a worker measures its groups' lag for the ppa_consumer_lag gauge (0: never)
    lag_sample_seconds: float = Field(30.0, validation_alias=AliasChoices("PPA_LAG_SAMPLE_SECONDS"))
    # consumer groups that run as shards, `group=count` separated by commas (e.g. billing.invoice-list=2): each
    # shard its own consumer, which `ppa worker SERVICE --shard I` runs alone (ppa_runtime.consumer.Shard)
    consumer_shards: str = Field("", validation_alias=AliasChoices("PPA_CONSUMER_SHARDS"))
    # the most a device's batch waits for the broker's acknowledgement before the device is answered 503 with
    # Retry-After; a broker or database found unreachable is given up on at once (ppa_runtime.readiness)
    dependency_timeout_seconds: float = Field(10.0, gt=0,
                                              validation_alias=AliasChoices("PPA_DEPENDENCY_TIMEOUT_SECONDS"))

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.env != "dev" and self.secret_key == DEV_SECRET:
            raise ValueError("PPA_SECRET_KEY must be set outside PPA_ENV=dev")
        if bool(self.kafka_bootstrap_servers) != bool(self.mongodb_uri):
            raise ValueError("set both KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI, or neither")
        self._shards()  # a malformed PPA_CONSUMER_SHARDS stops the process at start
        return self

    def shards_of(self, group: str) -> int:
        """How many shards a consumer group runs as (1: not split)."""
        return self._shards().get(group, 1)

    def _shards(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in self.consumer_shards.split(","))):
            group, _, count = item.partition("=")
            if not count.strip().isdigit() or not 1 <= int(count) <= 10:
                raise ValueError(f"PPA_CONSUMER_SHARDS: {item!r} is not group=count (count 1 to 10)")
            out[group.strip()] = int(count)
        return out

    @property
    def distributed(self) -> bool:
        """Kafka + MongoDB instead of the embedded SQLite runtime."""
        return bool(self.kafka_bootstrap_servers and self.mongodb_uri)
