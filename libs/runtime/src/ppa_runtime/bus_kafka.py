"""Event bus on Apache Kafka: aiokafka producer (idempotent, acks=all) and group consumers
with manual commits, CloudEvents binary mode on the wire."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from ppa_contracts import TOPICS, Envelope, dlq
from ppa_runtime.bus import GroupLag, Record

log = structlog.get_logger(__name__)


class KafkaSubscription:
    """A member of a Kafka consumer group; commits only what the caller says is done."""

    def __init__(self, bus: KafkaBus, consumer: AIOKafkaConsumer) -> None:
        self.bus = bus
        self.consumer = consumer

    async def fetch(self, timeout: float, max_records: int = 500) -> list[Record]:
        batches = await self.consumer.getmany(timeout_ms=int(timeout * 1000), max_records=max_records)
        out: list[Record] = []
        for tp, messages in batches.items():
            topic = self.bus.logical(tp.topic)
            for m in messages:
                out.append(Record(topic, tp.partition, m.offset, Envelope.from_kafka(m.headers, m.value)))
        return out

    async def commit(self, records: list[Record]) -> None:
        last: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(self.bus.physical(r.topic), r.partition)
            last[tp] = max(r.offset + 1, last.get(tp, 0))
        if last:
            await self.consumer.commit(last)

    async def close(self) -> None:
        await self.consumer.stop()


class KafkaBus:
    """Publishes and consumes CloudEvents on Kafka; topic names get the namespace prefix."""

    def __init__(self, bootstrap: str, namespace: str = "") -> None:
        self.bootstrap = bootstrap
        self.namespace = namespace
        self.producer: AIOKafkaProducer | None = None

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
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics([self.physical(t) for t in topics])
        finally:
            await admin.close()
        return [
            TopicPartition(d["topic"], p["partition"])
            for d in described if d.get("error_code", 0) == 0
            for p in sorted(d["partitions"], key=lambda p: p["partition"])
        ]

    async def publish(self, topic: str, events: list[Envelope]) -> None:
        assert self.producer is not None, "bus not started"
        futures = []
        for env in events:
            key, headers, value = env.to_kafka()
            futures.append(await self.producer.send(self.physical(topic), value=value, key=key, headers=headers))
        await asyncio.gather(*futures)

    async def subscribe(self, group: str, topics: list[str]) -> KafkaSubscription:
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
        return KafkaSubscription(self, consumer)

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
                        await handle(Record(topic, tp.partition, m.offset, Envelope.from_kafka(m.headers, m.value)))
                        count += 1
                for tp in list(todo):
                    if await consumer.position(tp) >= ends[tp]:
                        todo.discard(tp)
            return count
        finally:
            await consumer.stop()

    async def lag(self, group: str, topics: list[str]) -> list[GroupLag]:
        tps = await self.partitions(topics)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        await admin.start()
        await consumer.start()
        try:
            committed = await admin.list_consumer_group_offsets(f"{self.namespace}{group}")
            ends = await consumer.end_offsets(tps) if tps else {}
        finally:
            await consumer.stop()
            await admin.close()
        return [
            GroupLag(group, self.logical(tp.topic), tp.partition,
                     committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0, ends[tp])
            for tp in tps
        ]

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None
