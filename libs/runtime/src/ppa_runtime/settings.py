"""One settings object for every process, read from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ppa_contracts import TOPICS, dlq
from ppa_runtime import kafka_security

MIN_SECRET_LENGTH = 32
NEEDS_SECRET = ("PPA_SECRET_KEY is not set. Processes on Kafka + MongoDB (and any process outside PPA_ENV=dev) "
                "share one signing key that only the operator provides, at least 32 random characters, e.g. "
                "PPA_SECRET_KEY=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')\"")


def _read_secret(path: Path, name: str) -> SecretStr:
    """A secret mounted as a file (Kubernetes Secret volume, Docker secret); a trailing newline is not part of it."""
    try:
        return SecretStr(path.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as e:
        raise ValueError(f"{name}: cannot read {path} ({e.strerror})") from None


class Settings(BaseSettings):
    """Platform settings; `distributed` when both Kafka and MongoDB are configured."""

    # hide_input_in_errors: a refused setting must not echo the URI or password it was given
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True, hide_input_in_errors=True)

    env: str = Field("dev", validation_alias=AliasChoices("PPA_ENV"))
    data_dir: Path = Field(Path(".ppa"), validation_alias=AliasChoices("PPA_DATA_DIR"))
    namespace: str = Field("", validation_alias=AliasChoices("PPA_NAMESPACE"))
    kafka_bootstrap_servers: str | None = Field(None, validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS"))
    # a SecretStr: the URI carries the database password (mongodb+srv://user:pass@host/?tls=true)
    mongodb_uri: SecretStr | None = Field(None, validation_alias=AliasChoices("MONGODB_URI"))
    mongodb_uri_file: Path | None = Field(None, validation_alias=AliasChoices("MONGODB_URI_FILE"))
    # a MongoDB command that takes longer is logged (`mongodb_command_slow`: its name, collection and the shape
    # of its filter, no values); 0: none
    mongodb_slow_ms: int = Field(0, ge=0, validation_alias=AliasChoices("PPA_MONGODB_SLOW_MS"))
    # Managed Kafka (MSK, Confluent Cloud, Aiven): TLS and SASL, applied to every client (ppa_runtime.kafka_security)
    kafka_security_protocol: str = Field("PLAINTEXT", validation_alias=AliasChoices("KAFKA_SECURITY_PROTOCOL"))
    kafka_sasl_mechanism: str | None = Field(None, validation_alias=AliasChoices("KAFKA_SASL_MECHANISM"))
    kafka_sasl_username: str | None = Field(None, validation_alias=AliasChoices("KAFKA_SASL_USERNAME"))
    kafka_sasl_password: SecretStr | None = Field(None, validation_alias=AliasChoices("KAFKA_SASL_PASSWORD"))
    kafka_sasl_password_file: Path | None = Field(None, validation_alias=AliasChoices("KAFKA_SASL_PASSWORD_FILE"))
    kafka_ssl_cafile: Path | None = Field(None, validation_alias=AliasChoices("KAFKA_SSL_CAFILE"))
    kafka_ssl_certfile: Path | None = Field(None, validation_alias=AliasChoices("KAFKA_SSL_CERTFILE"))
    kafka_ssl_keyfile: Path | None = Field(None, validation_alias=AliasChoices("KAFKA_SSL_KEYFILE"))
    # of the topics a process creates when they are missing (managed clusters refuse or cannot write 1)
    kafka_replication_factor: int = Field(1, ge=1, le=7, validation_alias=AliasChoices("KAFKA_REPLICATION_FACTOR"))
    # None: the embedded runtime keeps a key of its own in the data dir (ppa_runtime.keys); SecretStr keeps it
    # out of reprs and logs
    secret_key: SecretStr | None = Field(None, validation_alias=AliasChoices("PPA_SECRET_KEY"))
    # the key before the last rotation: still verifies what it signed, never signs (docs/security.md)
    secret_key_previous: SecretStr | None = Field(None, validation_alias=AliasChoices("PPA_SECRET_KEY_PREVIOUS"))
    public_url: str = Field("http://127.0.0.1:8000", validation_alias=AliasChoices("PPA_PUBLIC_URL"))
    # /metrics on a listener of its own (Prometheus scrapes it; the public port then answers it 404). Unset: no
    # such listener, and the public port shows /metrics to signed-in operators only (docs/security.md)
    metrics_port: int | None = Field(None, ge=1, le=65535, validation_alias=AliasChoices("PPA_METRICS_PORT"))
    # loopback unless told: a pod or container sets 0.0.0.0 so that Prometheus (not the ingress) reaches it
    metrics_host: str = Field("127.0.0.1", validation_alias=AliasChoices("PPA_METRICS_HOST"))
    smtp_host: str | None = Field(None, validation_alias=AliasChoices("SMTP_HOST"))
    smtp_port: int = Field(25, validation_alias=AliasChoices("SMTP_PORT"))
    log_level: str = Field("INFO", validation_alias=AliasChoices("LOG_LEVEL"))
    log_json: bool = Field(True, validation_alias=AliasChoices("PPA_LOG_JSON"))
    # a warning or error that repeats is written once per this many seconds, with its count (ppa_runtime.logging)
    log_repeat_seconds: float = Field(30.0, gt=0, validation_alias=AliasChoices("PPA_LOG_REPEAT_SECONDS"))
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
    # Kafka partitions per topic, `topic=count` separated by commas, `default=count` for every topic not named;
    # unset: the catalog's counts. A topic's dead-letter topic has its count unless named itself. Existing
    # topics are grown to a larger count, never shrunk (docs/bus.md: what a new count does to keys and order)
    topic_partitions: str = Field("", validation_alias=AliasChoices("PPA_TOPIC_PARTITIONS"))
    # the most a device's batch waits for the broker's acknowledgement before the device is answered 503 with
    # Retry-After; a broker or database found unreachable is given up on at once (ppa_runtime.readiness)
    dependency_timeout_seconds: float = Field(10.0, gt=0,
                                              validation_alias=AliasChoices("PPA_DEPENDENCY_TIMEOUT_SECONDS"))

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        for name in ("secret_key", "secret_key_previous"):
            value = getattr(self, name)
            if value is not None and not value.get_secret_value().strip():
                setattr(self, name, None)  # an empty variable (compose's `${X:-}`) is no key
            elif value is not None and (len(value.get_secret_value()) < MIN_SECRET_LENGTH
                                        or value.get_secret_value().startswith("REPLACE-ME")):
                raise ValueError(f"PPA_{name.upper()} must be at least {MIN_SECRET_LENGTH} random characters")
        self._shards()  # a malformed PPA_CONSUMER_SHARDS stops the process at start
        self.partitions()  # and so does a malformed PPA_TOPIC_PARTITIONS
        return self

    @model_validator(mode="after")
    def _check_connections(self) -> Settings:
        """Secrets read from their files, then Kafka and MongoDB checked together: refused at start, never echoed."""
        if self.mongodb_uri_file is not None:
            if self.mongodb_uri is not None:
                raise ValueError("set MONGODB_URI or MONGODB_URI_FILE, not both")
            self.mongodb_uri = _read_secret(self.mongodb_uri_file, "MONGODB_URI_FILE")
        if self.kafka_sasl_password_file is not None:
            if self.kafka_sasl_password is not None:
                raise ValueError("set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both")
            self.kafka_sasl_password = _read_secret(self.kafka_sasl_password_file, "KAFKA_SASL_PASSWORD_FILE")
        uri = self.mongodb_uri.get_secret_value() if self.mongodb_uri else ""
        if uri and not uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("MONGODB_URI must begin with mongodb:// or mongodb+srv://")
        if bool(self.kafka_bootstrap_servers) != bool(uri):
            raise ValueError("set both KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI, or neither")
        kafka_security.check(self)  # a wrong TLS/SASL combination stops the process at start
        if self.secret_key is None and (self.distributed or self.env != "dev"):
            raise ValueError(NEEDS_SECRET)
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

    def partitions(self) -> dict[str, int]:
        """The partition counts PPA_TOPIC_PARTITIONS sets: per topic name, and `default`."""
        known = {"default"} | set(TOPICS) | {dlq(name) for name in TOPICS}
        out: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in self.topic_partitions.split(","))):
            topic, _, count = (text.strip() for text in item.partition("="))
            if not count.isdigit() or not 1 <= int(count) <= 1000:
                raise ValueError(f"PPA_TOPIC_PARTITIONS: {item!r} is not topic=count (count 1 to 1000)")
            if topic not in known:
                raise ValueError(f"PPA_TOPIC_PARTITIONS: {topic!r} is no topic of the catalog (nor `default`)")
            out[topic] = int(count)
        return out

    @property
    def distributed(self) -> bool:
        """Kafka + MongoDB instead of the embedded SQLite runtime."""
        return bool(self.kafka_bootstrap_servers and self.mongodb_uri_value)

    @property
    def mongodb_uri_value(self) -> str:
        """The MongoDB URI in clear, for the client only: never log it (it may hold a password)."""
        return self.mongodb_uri.get_secret_value() if self.mongodb_uri else ""
