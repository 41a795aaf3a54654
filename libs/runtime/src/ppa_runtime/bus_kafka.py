"""Event bus on Apache Kafka: aiokafka producer (idempotent, acks=all) and group consumers
with manual commits, CloudEvents binary mode on the wire."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from aiokafka.protocol.metadata import MetadataRequest

from ppa_contracts import TOPICS, Envelope, dlq
from ppa_contracts.envelope import kafka_attributes
from ppa_runtime.bus import GroupLag, Position, Record, Start
from ppa_runtime.consumer import Shard
from ppa_runtime.readiness import Unavailable

log = structlog.get_logger(__name__)


def _parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


class KafkaSubscription:
    """A member of a Kafka consumer group; commits only what the caller says is done."""

    def __init__(self, bus: KafkaBus, consumer: AIOKafkaConsumer, shard: Shard | None = None) -> None:
        self.bus = bus
        self.consumer = consumer
        self.shard = shard

    async def fetch(self, timeout: float, max_records: int = 500) -> list[Record]:
        batches = await self.consumer.getmany(timeout_ms=int(timeout * 1000), max_records=max_records)
        out: list[Record] = []
        shard = self.shard
        for tp, messages in batches.items():
            topic = self.bus.logical(tp.topic)
            for m in messages:
                raw = kafka_attributes(m.headers, m.value)
                if shard is not None and not shard.owns(topic, str(raw.get("subject") or "")):
                    out.append(Record(topic, tp.partition, m.offset, picked=((), ()), skip=True))
                else:
                    out.append(Record(topic, tp.partition, m.offset, raw=raw))
        return out

    async def commit(self, records: list[Record]) -> None:
        last: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(self.bus.physical(r.topic), r.partition)
            last[tp] = max(r.offset + 1, last.get(tp, 0))
        if last:
            # the commit's metadata says when, so a dashboard can tell a stalled group from an idle one
            now = datetime.now(UTC).isoformat()
            await self.consumer.commit({tp: (offset, now) for tp, offset in last.items()})

    async def complete(self, records: list[Record]) -> list[Record]:
        return records  # fetched whole

    async def close(self) -> None:
        await self.consumer.stop()


class KafkaTail:
    """A consumer without a group, assigned every partition of some topics; commits nothing."""

    def __init__(self, bus: KafkaBus, consumer: AIOKafkaConsumer, positions: dict[Position, int]) -> None:
        self.bus = bus
        self.consumer = consumer
        self._next = positions

    def positions(self) -> dict[Position, int]:
        return dict(self._next)

    async def fetch(self, timeout: float, max_records: int = 500) -> list[Record]:
        if not self._next:
            await asyncio.sleep(timeout)
            return []
        batches = await self.consumer.getmany(timeout_ms=int(timeout * 1000), max_records=max_records)
        out: list[Record] = []
        for tp, messages in batches.items():
            topic = self.bus.logical(tp.topic)
            for m in messages:
                out.append(Record(topic, tp.partition, m.offset, raw=kafka_attributes(m.headers, m.value)))
                self._next[(topic, tp.partition)] = m.offset + 1
        return out

    async def close(self) -> None:
        # aiokafka's group-less coordinator starts a task at start(); stopped before it ever ran, that
        # task's cancellation escapes stop() as CancelledError: let it run once first
        await asyncio.sleep(0)
        await self.consumer.stop()


class KafkaBus:
    """Publishes and consumes CloudEvents on Kafka; topic names get the namespace prefix."""

    def __init__(self, bootstrap: str, namespace: str = "") -> None:
        self.bootstrap = bootstrap
        self.namespace = namespace
        self.producer: AIOKafkaProducer | None = None
        # long-lived clients for metadata and offset look-ups (dashboards ask often)
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._clients_lock = asyncio.Lock()

    async def _admin_client(self) -> AIOKafkaAdminClient:
        async with self._clients_lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
                await admin.start()
                self._admin = admin
            return self._admin

    async def _offsets_client(self) -> AIOKafkaConsumer:
        async with self._clients_lock:
            if self._offsets is None:
                consumer = self._reader()
                await consumer.start()
                self._offsets = consumer
            return self._offsets

    def physical(self, topic: str) -> str:
        return f"{self.namespace}{topic}"

    def logical(self, topic: str) -> str:
        return topic[len(self.namespace):] if self.namespace and topic.startswith(self.namespace) else topic

    async def start(self) -> None:
        await self.ensure_topics()
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=8 * 1024 * 1024,
            compression_type="gzip",
        )
        await self.producer.start()

    async def ensure_topics(self) -> None:
        """Create every catalog topic and its dead-letter topic (no-op for those that exist)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            wanted = []
            for topic in TOPICS.values():
                for name in (topic.name, dlq(topic.name)):
                    if self.physical(name) not in existing:
                        wanted.append(NewTopic(self.physical(name), num_partitions=topic.partitions, replication_factor=1))
            if wanted:
                try:
                    await admin.create_topics(wanted)
                except TopicAlreadyExistsError:
                    pass
                await self._await_leaders(admin, [t.name for t in wanted])
        finally:
            await admin.close()

    @staticmethod
    async def _await_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0) -> None:
        """New topics answer NotLeaderForPartition until every partition has a leader: wait for that."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            described = await admin.describe_topics(names)
            if all(d.get("error_code", 0) == 0 and d["partitions"]
                   and all(p["leader"] >= 0 for p in d["partitions"]) for d in described):
                return
            await asyncio.sleep(0.2)
        log.warning("topics_without_leader", topics=names)

    async def partitions(self, topics: list[str]) -> list[TopicPartition]:
        """Every partition of these (logical) topics, from the broker's metadata."""
        admin = await self._admin_client()
        described = await admin.describe_topics([self.physical(t) for t in topics])
        return [
            TopicPartition(d["topic"], p["partition"])
            for d in described if d.get("error_code", 0) == 0
            for p in sorted(d["partitions"], key=lambda p: p["partition"])
        ]

    async def publish(self, topic: str, events: list[Envelope], timeout: float | None = None) -> None:
        """Send and wait until the broker has every event; with `timeout`, Unavailable("kafka") after that long.

        Without a timeout the producer waits its own request timeout (40 s) for an unreachable broker. Events still
        in the producer's buffer when the timeout strikes may reach the topic later: a caller that retries publishes
        them again, so consumers see them twice (they are idempotent)."""
        assert self.producer is not None, "bus not started"
        try:
            await asyncio.wait_for(self._send_all(topic, events), timeout)
        except TimeoutError as exc:
            raise Unavailable("kafka", f"no acknowledgement in {timeout:g} s") from exc
        except KafkaError as exc:
            if exc.retriable or isinstance(exc, KafkaTimeoutError):  # the broker, not the events: try again later
                raise Unavailable("kafka", type(exc).__name__) from exc
            raise

    async def _send_all(self, topic: str, events: list[Envelope]) -> None:
        assert self.producer is not None
        futures = []
        for env in events:
            key, headers, value = env.to_kafka()
            futures.append(await self.producer.send(self.physical(topic), value=value, key=key, headers=headers))
        await asyncio.gather(*futures)

    async def probe(self) -> None:
        """Ask a bootstrap broker for the cluster's brokers (no topics: a small answer) over a new connection.

        ConnectionError when every broker refuses the connection (unreachable); the caller's bound when one is slow
        to connect or to answer (busy or hung). A connection of its own: a stuck probe must not close the
        producer's."""
        errors = []
        for server in self.bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                conn = await create_conn(host, int(port), client_id="ppa-readiness", request_timeout_ms=10_000)
            except (OSError, KafkaError) as exc:
                errors.append(f"{server}: {type(exc).__name__}")
                continue
            try:
                await conn.send(MetadataRequest([]))
                return
            finally:
                conn.close()
        raise ConnectionError(f"no Kafka broker reachable ({'; '.join(errors)})")

    async def subscribe(self, group: str, topics: list[str], fields: tuple[str, ...] = (),
                        picked_only: frozenset[str] = frozenset(), shard: Shard | None = None) -> KafkaSubscription:
        # `fields` are picked from each record's decoded JSON (the broker hands over whole records)
        consumer = AIOKafkaConsumer(
            *[self.physical(t) for t in topics],
            bootstrap_servers=self.bootstrap,
            group_id=f"{self.namespace}{group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
        )
        await consumer.start()
        return KafkaSubscription(self, consumer, shard)

    async def replay(self, topic: str, handle: Callable[[Record], Awaitable[None]]) -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    client_id=f"replay-{uuid.uuid4().hex[:8]}")
        tps = await self.partitions([topic])
        if not tps:
            return 0
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            todo = {tp for tp in tps if ends[tp] > 0}
            count = 0
            while todo:
                batches = await consumer.getmany(*todo, timeout_ms=1000)
                for tp, messages in batches.items():
                    for m in messages:
                        if m.offset >= ends[tp]:
                            break
                        await handle(Record(topic, tp.partition, m.offset, raw=kafka_attributes(m.headers, m.value)))
                        count += 1
                for tp in list(todo):
                    if await consumer.position(tp) >= ends[tp]:
                        todo.discard(tp)
            return count
        finally:
            await consumer.stop()

    async def lag(self, group: str, topics: list[str]) -> list[GroupLag]:
        tps = await self.partitions(topics)
        admin = await self._admin_client()
        committed = await admin.list_consumer_group_offsets(f"{self.namespace}{group}")
        ends = await (await self._offsets_client()).end_offsets(tps) if tps else {}
        done = {tp: committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0 for tp in tps}
        waiting = {tp: done[tp] for tp in tps if done[tp] < ends[tp]}
        pending: dict[TopicPartition, datetime] = {}
        if waiting:
            consumer = self._reader()
            await consumer.start()
            try:
                pending = await self._append_times(consumer, waiting)
            finally:
                await asyncio.sleep(0)
                await consumer.stop()
        return [
            GroupLag(group, self.logical(tp.topic), tp.partition, done[tp], ends[tp],
                     committed_at=_parse_time(committed[tp].metadata) if tp in committed else None,
                     pending_since=pending.get(tp))
            for tp in tps
        ]

    def _reader(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                client_id=f"reader-{uuid.uuid4().hex[:8]}")

    @staticmethod
    async def _append_times(consumer: AIOKafkaConsumer, at: dict[TopicPartition, int]) -> dict[TopicPartition, datetime]:
        """The timestamp of the record at each given offset (one fetch per partition)."""
        if not at:
            return {}
        consumer.assign(list(at))
        for tp, offset in at.items():
            consumer.seek(tp, offset)
        out: dict[TopicPartition, datetime] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while len(out) < len(at) and loop.time() < deadline:
            batches = await consumer.getmany(*[tp for tp in at if tp not in out], timeout_ms=500, max_records=50)
            for tp, messages in batches.items():
                if messages and tp not in out:
                    out[tp] = datetime.fromtimestamp(messages[0].timestamp / 1000, UTC)
        return out

    async def topics(self) -> list[str]:
        names = await (await self._admin_client()).list_topics()
        return sorted(self.logical(n) for n in names
                      if not n.startswith("__") and (not self.namespace or n.startswith(self.namespace)))

    async def ends(self, topics: list[str]) -> dict[Position, int]:
        tps = await self.partitions(topics)
        if not tps:
            return {}
        ends = await (await self._offsets_client()).end_offsets(tps)
        return {(self.logical(tp.topic), tp.partition): ends[tp] for tp in tps}

    async def offsets_at(self, topics: list[str], times: list[datetime]) -> list[dict[Position, int]]:
        tps = await self.partitions(topics)
        if not tps:
            return [{} for _ in times]
        consumer = await self._offsets_client()
        ends = await consumer.end_offsets(tps)
        out = []
        for when in times:
            found = await consumer.offsets_for_times({tp: int(when.timestamp() * 1000) for tp in tps})
            out.append({(self.logical(tp.topic), tp.partition): found[tp].offset if found.get(tp) else ends[tp]
                        for tp in tps})
        return out

    async def tail(self, topics: list[str], start: Start = "end") -> KafkaTail:
        tps = await self.partitions(topics)
        consumer = self._reader()
        await consumer.start()
        try:
            if start == "end":
                first = await consumer.end_offsets(tps) if tps else {}
            elif start == "beginning":
                first = await consumer.beginning_offsets(tps) if tps else {}
            else:
                first = {tp: start.get((self.logical(tp.topic), tp.partition), 0) for tp in tps}
            if tps:
                consumer.assign(tps)
                for tp, offset in first.items():
                    consumer.seek(tp, offset)
        except BaseException:
            await consumer.stop()
            raise
        return KafkaTail(self, consumer, {(self.logical(tp.topic), tp.partition): o for tp, o in first.items()})

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None
        if self._offsets is not None:
            await self._offsets.stop()
            self._offsets = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
