"""Event bus on Apache Kafka: aiokafka producer (idempotent, acks=all) and group consumers
with manual commits, CloudEvents binary mode on the wire."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (CommitFailedError, IllegalStateError, InvalidPartitionsError, KafkaConnectionError,
                             KafkaError, KafkaTimeoutError, TopicAlreadyExistsError)
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.protocol.metadata import MetadataRequest

from ppa_contracts import TOPICS, Envelope, dlq
from ppa_contracts.envelope import kafka_attributes
from ppa_runtime import tracing
from ppa_runtime.bus import GroupLag, Position, Record, Start, Wire
from ppa_runtime.consumer import Shard
from ppa_runtime.kafka_security import topics_refused, unreachable
from ppa_runtime.readiness import Unavailable

log = structlog.get_logger(__name__)

# Throughput settings (docs/bus.md has the measurements); durability (acks=all, idempotence) is not among them.
PRODUCER_SETTINGS: dict[str, Any] = {
    # every publish is awaited, so lingering only adds its time to each one: what arrives while a request is
    # out goes in the next request anyway (the producer keeps one request in flight per broker)
    "linger_ms": 0,
    "max_batch_size": 1024 * 1024,
    "max_request_size": 8 * 1024 * 1024,
    # zstd (level 3) packs reading batches 2.5 times tighter than gzip at about nine times its speed; gzip
    # (level 9 in aiokafka) took more CPU than the rest of a device batch's publish
    "compression_type": "zstd",
}
# publishes of this many events or more are sent as batches of their own (`KafkaBus._send_batches`)
OWN_BATCHES_FROM = 64
# one partition: the member of a group on this topic that Kafka assigns it holds the group's leadership (no record
# is ever written to it)
LEADERSHIP_TOPIC = "ppa.runtime.leadership"
CONSUMER_SETTINGS: dict[str, Any] = {
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "fetch_max_bytes": 32 * 1024 * 1024,
}


@lru_cache(maxsize=65536)
def _key_hash(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


def _partition(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """The default partitioner's choice (a key's murmur2 hash modulo the partition count, as Java clients do),
    the hash remembered per key: aiokafka computes it in Python, per event, and keys (serials, customer
    numbers) repeat."""
    if key is None:
        return DefaultPartitioner()(key, all_partitions, available)
    return all_partitions[_key_hash(key) % len(all_partitions)]


def _parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _subject(headers: list[tuple[str, bytes]] | tuple) -> str:
    """The `ce_subject` header's text ("" without one), as `kafka_attributes` would read it."""
    for name, raw in headers or ():
        if name == "ce_subject":
            return raw.decode(errors="replace")
    return ""


class KafkaSubscription(ConsumerRebalanceListener):
    """A member of a Kafka consumer group; commits only what the caller says is done.

    Partitions move between members when one joins or leaves (a crash: once its session times out). A batch in
    hand when that begins is applied and committed before the partitions are given up (`on_partitions_revoked`
    waits for it; the group waits for every member to give its partitions up), so a partition has one member
    applying its records at a time: a device's daily usage keeps one writer. Records fetched once the hand-over
    began are dropped unapplied; the partition's next member reads them again from the last commit. A commit
    refused all the same (this member was dropped from the group: it took longer than its session) is logged
    and passed over: those records come again to the partition's new member, and applying them twice is
    harmless (handlers are idempotent)."""

    def __init__(self, bus: KafkaBus, consumer: AIOKafkaConsumer, shard: Shard | None = None,
                 group: str = "") -> None:
        self.bus = bus
        self.consumer = consumer
        self.shard = shard
        self.group = group
        self.in_hand = asyncio.Lock()  # held from a fetch that returned records until their commit
        self.revoked: set[TopicPartition] = set()  # given up, until the group assigns partitions again

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.revoked = set(revoked)
        if revoked:
            async with self.in_hand:  # the batch in hand is applied and committed first
                pass
            log.info("partitions_revoked", group=self.group,
                     partitions=sorted(f"{self.bus.logical(tp.topic)}/{tp.partition}" for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.revoked = set()
        log.info("partitions_assigned", group=self.group,
                 partitions=sorted(f"{self.bus.logical(tp.topic)}/{tp.partition}" for tp in assigned))

    async def fetch(self, timeout: float, max_records: int = 500) -> list[Record]:
        batches = await self.consumer.getmany(timeout_ms=int(timeout * 1000), max_records=max_records)
        if not batches:
            return []
        took = not self.in_hand.locked()  # else records fetched before are still in hand (not committed yet)
        if took:
            await self.in_hand.acquire()
        if self.revoked:  # fetched before the hand-over began: the partitions' next member reads them again
            batches = {tp: messages for tp, messages in batches.items() if tp not in self.revoked}
        out: list[Record] = []
        shard = self.shard
        for tp, messages in batches.items():
            topic, partition = self.bus.logical(tp.topic), tp.partition
            if shard is None:
                out += [Record(topic, partition, m.offset, raw=kafka_attributes(m.headers, m.value),
                               wire=Wire(m.key, tuple(m.headers), m.value)) for m in messages]
                continue
            for m in messages:
                # another shard's record is skipped on its subject header alone, its value never decoded
                if not shard.owns(topic, _subject(m.headers)):
                    out.append(Record(topic, partition, m.offset, picked=((), ()), skip=True))
                else:
                    out.append(Record(topic, partition, m.offset, raw=kafka_attributes(m.headers, m.value),
                                      wire=Wire(m.key, tuple(m.headers), m.value)))
        if not out and took:
            self.in_hand.release()
        return out

    async def commit(self, records: list[Record]) -> None:
        try:
            last: dict[tuple[str, int], int] = {}
            for r in records:
                position = (r.topic, r.partition)
                if r.offset >= last.get(position, -1):
                    last[position] = r.offset
            if last:
                # the commit's metadata says when, so a dashboard can tell a stalled group from an idle one
                now = datetime.now(UTC).isoformat()
                try:
                    await self.consumer.commit({TopicPartition(self.bus.physical(topic), partition): (offset + 1, now)
                                                for (topic, partition), offset in last.items()})
                except (CommitFailedError, IllegalStateError) as exc:
                    log.warning("commit_refused_after_rebalance", group=self.group,
                                records=len(records), error=repr(exc))
        finally:
            if self.in_hand.locked():
                self.in_hand.release()

    async def complete(self, records: list[Record]) -> list[Record]:
        return records  # fetched whole

    async def close(self) -> None:
        if self.in_hand.locked():  # a batch that failed midway: the partitions' next member reads it again
            self.in_hand.release()
        await self.consumer.stop()


class KafkaLeadership(ConsumerRebalanceListener):
    """Leadership by Kafka's group membership: every process asking for a name joins the consumer group of that
    name on the one-partition leadership topic, and the member the partition is assigned to holds it. When it
    stops (or leaves), the partition is revoked and given to another member: on a clean leave at once and only
    after the leader's step in progress ends (`turn`); after a crash once its session times out (10 s)."""

    def __init__(self, bus: KafkaBus, name: str) -> None:
        self.bus, self.name = bus, name
        self.held = asyncio.Event()
        self._step = asyncio.Lock()
        self.consumer = AIOKafkaConsumer(**bus.connection, group_id=f"{bus.namespace}{name}",
                                         enable_auto_commit=False)
        self._member: asyncio.Task | None = None

    async def start(self) -> None:
        self.consumer.subscribe([self.bus.physical(LEADERSHIP_TOPIC)], listener=self)
        await self.consumer.start()
        self._member = asyncio.create_task(self._stay(), name=f"leadership:{self.name}")

    async def _stay(self) -> None:
        """Poll, which keeps this process a member of the group (nothing ever arrives)."""
        while True:
            try:
                await self.consumer.getmany(timeout_ms=1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker is away for a while: the coordinator rejoins when it is back
                log.warning("leadership_poll_failed", name=self.name, error=repr(exc))
                await asyncio.sleep(1.0)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked and self.held.is_set():
            self.held.clear()
            async with self._step:  # the step in progress ends before another member is given the partition
                pass
            log.info("leadership_given_up", name=self.name)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if assigned:
            self.held.set()
            log.info("leadership_taken", name=self.name)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[bool]:
        async with self._step:
            yield self.held.is_set()

    async def close(self) -> None:
        if self._member is not None:
            self._member.cancel()
            await asyncio.gather(self._member, return_exceptions=True)
            self._member = None
        await self.consumer.stop()  # leaves the group: the partition is revoked here and assigned elsewhere
        self.held.clear()


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

    def __init__(self, bootstrap: str, namespace: str = "", security: dict | None = None,
                 replication_factor: int = 1, partitions: Mapping[str, int] | None = None) -> None:
        self.bootstrap = bootstrap
        self.namespace = namespace
        self.replication_factor = replication_factor
        # every client connects alike: addresses plus TLS/SASL (ppa_runtime.kafka_security.client_options)
        self.security = security or {}
        self.connection = {"bootstrap_servers": bootstrap, **self.security}
        self.partition_counts = dict(partitions or {})  # PPA_TOPIC_PARTITIONS: per topic, and `default`
        self.producer: AIOKafkaProducer | None = None
        # long-lived clients for metadata and offset look-ups (dashboards ask often)
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._clients_lock = asyncio.Lock()
        self.producer_settings = dict(PRODUCER_SETTINGS)
        self.consumer_settings = dict(CONSUMER_SETTINGS)

    async def _admin_client(self) -> AIOKafkaAdminClient:
        async with self._clients_lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(**self.connection)
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
        try:
            await self.ensure_topics()
        except KafkaConnectionError:
            raise await unreachable(self.bootstrap, self.security) from None
        self.producer = AIOKafkaProducer(
            **self.connection,
            acks="all",
            enable_idempotence=True,
            partitioner=_partition,
            **self.producer_settings,
        )
        await self.producer.start()

    def partitions_of(self, name: str) -> int:
        """How many partitions a catalog topic or dead-letter topic has when created here: as set, else as its
        topic (a dead-letter topic), else the default set, else the catalog's count."""
        counts = self.partition_counts
        topic = TOPICS[name if name in TOPICS else name.removesuffix(dlq(""))]
        return counts.get(name) or counts.get(topic.name) or counts.get("default") or topic.partitions

    async def ensure_topics(self) -> None:
        """Create every catalog topic and its dead-letter topic (no-op for those that exist); an existing topic
        with fewer partitions than PPA_TOPIC_PARTITIONS sets for it gets more (none is ever taken away)."""
        admin = AIOKafkaAdminClient(**self.connection)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            names = [name for topic in TOPICS.values() for name in (topic.name, dlq(topic.name))]
            wanted = [NewTopic(self.physical(name), num_partitions=self.partitions_of(name),
                               replication_factor=self.replication_factor)
                      for name in names if self.physical(name) not in existing]
            if self.physical(LEADERSHIP_TOPIC) not in existing:
                wanted.append(NewTopic(self.physical(LEADERSHIP_TOPIC), num_partitions=1,
                                       replication_factor=self.replication_factor))
            if wanted:
                try:
                    created = await admin.create_topics(wanted)
                except TopicAlreadyExistsError:
                    pass
                else:
                    topics_refused(created.topic_errors, self.replication_factor)
                await self._await_leaders(admin, [t.name for t in wanted])
            if self.partition_counts:
                await self._grow(admin, [name for name in names if self.physical(name) in existing])
        finally:
            await admin.close()

    async def _grow(self, admin: AIOKafkaAdminClient, names: list[str]) -> None:
        """Existing topics to the partition counts set, where that is more than they have: a key's new partition
        is its hash modulo the new count, so its later events may be read before its earlier ones (docs/bus.md)."""
        described = {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(
            [self.physical(name) for name in names]) if d.get("error_code", 0) == 0}
        grow = {}
        for name in names:
            have, want = described.get(self.physical(name)), self.partitions_of(name)
            if have is not None and want > have:
                grow[self.physical(name)] = NewPartitions(want)
                log.warning("topic_partitions_grown", topic=name, partitions=have, to=want)
            elif have is not None and want < have:
                log.warning("topic_partitions_kept", topic=name, partitions=have, set_to=want,
                            reason="a topic's partitions are never taken away")
        if grow:
            try:
                await admin.create_partitions(grow)
            except InvalidPartitionsError:  # grown meanwhile by another process starting with the same setting
                pass
            await self._await_leaders(admin, list(grow), counts={t: n.total_count for t, n in grow.items()})

    @staticmethod
    async def _await_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0,
                             counts: Mapping[str, int] | None = None) -> None:
        """New topics answer NotLeaderForPartition until every partition has a leader: wait for that (and, for
        grown topics, until the metadata shows their new `counts`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            described = await admin.describe_topics(names)
            if all(d.get("error_code", 0) == 0 and d["partitions"]
                   and len(d["partitions"]) >= (counts or {}).get(d["topic"], 1)
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
            with tracing.publishing("kafka", topic, events):
                await asyncio.wait_for(self._send_all(topic, events), timeout)
        except TimeoutError as exc:
            raise Unavailable("kafka", f"no acknowledgement in {timeout:g} s") from exc
        except KafkaError as exc:
            if exc.retriable or isinstance(exc, KafkaTimeoutError):  # the broker, not the events: try again later
                raise Unavailable("kafka", type(exc).__name__) from exc
            raise

    async def _send_all(self, topic: str, events: list[Envelope]) -> None:
        assert self.producer is not None
        physical = self.physical(topic)
        if len(events) >= OWN_BATCHES_FROM:
            futures = await self._send_batches(physical, events)
        else:
            # into the producer's open batches: concurrent publishes (the device API's requests, one event
            # each) share batches and requests instead of waiting for each other
            futures = []
            for env in events:
                key, headers, value = env.to_kafka()
                futures.append(await self.producer.send(physical, value=value, key=key, headers=headers))
        # returns once the broker has acknowledged every event (acks=all); one after the other: once the first
        # is done, most others are too (they share its batch)
        for future in futures:
            await future

    async def _send_batches(self, topic: str, events: list[Envelope]) -> list[asyncio.Future]:
        """A long list (a relay's) as batches of its own, built per partition in the order of the list: the
        producer's `send` costs more per event than encoding the event. Partitioned as `send` would."""
        assert self.producer is not None
        partitions = sorted(await self.producer.partitions_for(topic))
        batches: dict[int, list[BatchBuilder]] = {}
        for env in events:
            key, headers, value = env.to_kafka()
            own = batches.setdefault(_partition(key, partitions, partitions), [])
            if not own or own[-1].append(key=key, value=value, timestamp=None, headers=headers) is None:
                own.append(self.producer.create_batch())  # the first record always fits (as in `send`)
                own[-1].append(key=key, value=value, timestamp=None, headers=headers)
        # a partition's next batch waits until its earlier ones are taken for sending: order holds
        return [await self.producer.send_batch(batch, topic, partition=partition)
                for partition, own in batches.items() for batch in own]

    async def probe(self) -> None:
        """Ask a bootstrap broker for the cluster's brokers (no topics: a small answer) over a new connection.

        ConnectionError when every broker refuses the connection (unreachable); the caller's bound when one is slow
        to connect or to answer (busy or hung). A connection of its own: a stuck probe must not close the
        producer's."""
        errors = []
        for server in self.bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                conn = await create_conn(host, int(port), client_id="ppa-readiness", request_timeout_ms=10_000,
                                         **self.security)  # TLS / SASL as every other client
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
            **self.connection,
            group_id=f"{self.namespace}{group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self.consumer_settings,
        )
        subscription = KafkaSubscription(self, consumer, shard, group)
        consumer.subscribe([self.physical(t) for t in topics], listener=subscription)
        await consumer.start()
        return subscription

    async def replay(self, topic: str, handle: Callable[[Record], Awaitable[None]]) -> int:
        consumer = AIOKafkaConsumer(**self.connection, group_id=None, enable_auto_commit=False,
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
        return AIOKafkaConsumer(**self.connection, group_id=None, enable_auto_commit=False,
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
        hidden = self.physical(LEADERSHIP_TOPIC)
        return sorted(self.logical(n) for n in names if not n.startswith("__") and n != hidden
                      and (not self.namespace or n.startswith(self.namespace)))

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

    async def leadership(self, name: str) -> KafkaLeadership:
        leadership = KafkaLeadership(self, name)
        await leadership.start()
        return leadership

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
