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

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.env != "dev" and self.secret_key == DEV_SECRET:
            raise ValueError("PPA_SECRET_KEY must be set outside PPA_ENV=dev")
        if bool(self.kafka_bootstrap_servers) != bool(self.mongodb_uri):
            raise ValueError("set both KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI, or neither")
        return self

    @property
    def distributed(self) -> bool:
        """Kafka + MongoDB instead of the embedded SQLite runtime."""
        return bool(self.kafka_bootstrap_servers and self.mongodb_uri)
