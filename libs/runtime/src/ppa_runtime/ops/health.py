"""Health of the event flow: per topic the rate, per consumer group the lag, per projection its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ppa_runtime import metrics
from ppa_runtime.bus import GroupLag
from ppa_runtime.consumer import ConsumerSpec, group_of, shards_of
from ppa_runtime.ops.events import all_topics

RATE_MINUTES = 60


@dataclass(frozen=True)
class TopicRate:
    """Events appended per minute over the last hour (oldest minute first) and in all."""

    topic: str
    per_minute: list[int]
    total: int

    @property
    def last_hour(self) -> int:
        return sum(self.per_minute)


@dataclass(frozen=True)
class GroupHealth:
    """A consumer group: its partitions, lag, and whether it is stalled (lag with no progress for long)."""

    group: str
    service: str
    topics: list[str]
    partitions: list[GroupLag]
    stalled_for: timedelta | None
    running_here: bool | None  # None when this process does not run the group's worker

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def committed(self) -> int:
        return sum(p.committed for p in self.partitions)

    @property
    def last_commit(self) -> datetime | None:
        times = [p.committed_at for p in self.partitions if p.committed_at]
        return max(times) if times else None


@dataclass(frozen=True)
class ProjectionHealth:
    """A rebuildable read model: its group's checkpoint and how many documents it holds."""

    name: str
    service: str
    group: str
    collections: dict[str, int]
    checkpoint: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> next offset to apply


def stalled_for(parts: list[GroupLag], now: datetime, threshold: timedelta) -> timedelta | None:
    """How long a group has had work waiting without committing, when that is at least `threshold`."""
    waits = []
    for p in parts:
        if p.lag <= 0:
            continue
        since = max((t for t in (p.committed_at, p.pending_since) if t), default=None)
        if since is not None:  # neither known: cannot tell a stall from a backlog just arrived
            waits.append(now - since)
    longest = max(waits, default=None)
    return longest if longest is not None and longest >= threshold else None


def projections_of(host) -> list[tuple[str, ConsumerSpec]]:
    """(service name, spec) of every consumer group that owns a read model, i.e. can be rebuilt."""
    return [(svc.name, spec) for svc in host.services for spec in svc.consumers() if spec.collections]


def projection_name(spec: ConsumerSpec) -> str:
    return spec.name or spec.group


class Health:
    """Computes the health page's figures from the bus and the services' stores."""

    def __init__(self, host, stall_after: timedelta) -> None:
        self.host = host
        self.bus = host.runtime.bus
        self.stall_after = stall_after

    async def rates(self, now: datetime | None = None) -> list[TopicRate]:
        """Per topic, events per minute for the last RATE_MINUTES minutes."""
        now = now or datetime.now(UTC)
        topics = all_topics()
        marks = [now - timedelta(minutes=RATE_MINUTES - i) for i in range(RATE_MINUTES)]
        ends = await self.bus.ends(topics)
        at = await self.bus.offsets_at(topics, marks) + [ends]  # the last minute runs up to each partition's end
        out = []
        for topic in topics:
            parts = [p for p in ends if p[0] == topic]
            per_minute = [sum(at[i + 1].get(p, 0) - at[i].get(p, 0) for p in parts) for i in range(RATE_MINUTES)]
            out.append(TopicRate(topic, [max(n, 0) for n in per_minute], sum(ends[p] for p in parts)))
        return out

    async def groups(self, now: datetime | None = None) -> list[GroupHealth]:
        """Every consumer group of the host's services, with lag and stall; also sets the lag gauge."""
        now = now or datetime.now(UTC)
        running = {c.group: c.running for c in getattr(self.host, "consumers", [])}
        out = []
        for svc in self.host.services:
            for spec in svc.consumers():
                for group in self._groups_of(spec):  # a group that runs as shards: each shard's own
                    parts = await self.bus.lag(group, spec.topics)
                    for p in parts:
                        metrics.CONSUMER_LAG.labels(group, p.topic, str(p.partition)).set(p.lag)
                    out.append(GroupHealth(group, svc.name, spec.topics, parts,
                                           stalled_for(parts, now, self.stall_after), running.get(group)))
        return out

    def _groups_of(self, spec: ConsumerSpec) -> list[str]:
        settings = self.host.runtime.settings
        return [group_of(spec, shard) for shard in shards_of(spec, settings.shards_of(spec.group))]

    async def projections(self) -> list[ProjectionHealth]:
        """Every rebuildable projection with its document counts and its group's checkpoint."""
        out = []
        for service, spec in projections_of(self.host):
            svc = next(s for s in self.host.services if s.name == service)
            counts = {c: await svc.docs.collection(c).count() for c in spec.collections}
            groups = self._groups_of(spec)
            # of a group that runs as shards, the checkpoint is the one furthest behind
            parts = [p for group in groups for p in await self.bus.lag(group, spec.topics)]
            checkpoint: dict[str, int] = {}
            for p in parts:
                key = f"{p.topic}/{p.partition}"
                checkpoint[key] = min(p.committed, checkpoint.get(key, p.committed))
            out.append(ProjectionHealth(projection_name(spec), service, spec.group, counts, checkpoint))
        return out
