"""Builds the adapters for the configured runtime: embedded (SQLite) or distributed (Kafka + MongoDB)."""

from __future__ import annotations

from ppa_runtime.bus import EventBus
from ppa_runtime.docstore import DocStore
from ppa_runtime.eventstore import EventStore
from ppa_runtime.keys import SigningKeys, signing_keys
from ppa_runtime.readiness import Readiness
from ppa_runtime.settings import Settings


class MongoUnreachable(RuntimeError):
    """The MongoDB server did not answer a ping at start (address, TLS, credentials)."""


class Runtime:
    """The event bus and, per service, its event store and document store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys: SigningKeys
        self.bus: EventBus
        self._dbs: dict[str, object] = {}
        self._mongo = None
        self._mongo_probe = None
        self._update_gate = None  # how update commands go out to this MongoDB-protocol server (docstore_mongo)
        self._in_is_pass = False  # whether it answers `$in` by a pass over the collection
        self.readiness = Readiness({})  # the embedded runtime's stores and log are files of this process

    @property
    def kind(self) -> str:
        return "distributed" if self.settings.distributed else "embedded"

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        """Connect to the bus and stores (created in the caller's lifespan, never at import)."""
        rt = cls(settings)
        rt.keys = signing_keys(settings)
        if settings.distributed:
            from pymongo import AsyncMongoClient

            from ppa_runtime.bus_kafka import KafkaBus
            from ppa_runtime.docstore_mongo import CommandCounter
            from ppa_runtime.kafka_security import client_options

            rt._mongo = AsyncMongoClient(settings.mongodb_uri_value, tz_aware=True,
                                         event_listeners=[CommandCounter(settings.mongodb_slow_ms)])
            await rt._ping_mongo()
            bus = KafkaBus(settings.kafka_bootstrap_servers or "", settings.namespace, client_options(settings),
                           settings.kafka_replication_factor, partitions=settings.partitions())
            try:
                await bus.start()
            except BaseException:
                await rt._mongo.close()
                raise
            rt.bus = bus
            rt.readiness = Readiness({"kafka": bus.probe, "mongodb": rt._probe_mongo},
                                     roles={"bus": "kafka", "store": "mongodb"})
            # the probe's own client: a ping must not wait behind the requests' connections when they are all busy
            rt._mongo_probe = AsyncMongoClient(settings.mongodb_uri_value, maxPoolSize=1, serverSelectionTimeoutMS=1000)
        else:
            from ppa_runtime.bus_sqlite import SqliteBus

            bus = SqliteBus(rt._sqlite("bus"))
            await bus.start()
            rt.bus = bus
        return rt

    async def _ping_mongo(self) -> None:
        """A wrong address, an untrusted certificate or refused credentials stop the start with pymongo's reason,
        not the first request minutes later (the client connects lazily)."""
        from pymongo.errors import PyMongoError

        try:
            await self._mongo.admin.command("ping")
            await self._learn_server()
        except PyMongoError as e:
            await self._mongo.close()
            # the topology description that follows the reason is long and says nothing more
            reason = str(e).split(", Topology Description:")[0]
            raise MongoUnreachable(f"MongoDB refused or did not answer: {reason}") from None

    async def _learn_server(self) -> None:
        """FerretDB (its `buildInfo` names its version) gets its update commands in small chunks; MongoDB as is.
        A server whose `buildInfo` has no `gitVersion` is no MongoDB build (mongo-java-server): like FerretDB it
        answers `$in` by a pass over the collection (`Collection.in_is_pass`)."""
        from ppa_runtime.docstore_mongo import UpdateGate

        info = await self._mongo.admin.command("buildInfo")
        ferretdb = "ferretdbVersion" in info
        self._update_gate = UpdateGate() if ferretdb else UpdateGate(None)
        self._in_is_pass = ferretdb or "gitVersion" not in info

    async def _probe_mongo(self) -> None:
        """Readiness: is MongoDB there (refused at once, slow within the probe's bound)?"""
        import asyncio

        import pymongo
        import pymongo.errors

        # nothing listening at any known address: down at once (pymongo would wait and call it a timeout); a
        # connection that takes long is left to the probe's bound (Readiness: slow, not refused)
        addresses = list(self._mongo_probe.topology_description.server_descriptions())
        unreachable = []
        for host, port in addresses:
            try:
                _, writer = await asyncio.open_connection(host, port)
                writer.close()
            except OSError as exc:
                unreachable.append(f"{host}:{port}: {type(exc).__name__}")
        if addresses and len(unreachable) == len(addresses):
            raise ConnectionError(f"no MongoDB server reachable ({'; '.join(unreachable)})")
        # `hello`, what drivers monitor servers with: under a benchmark's write load FerretDB left `ping` unanswered
        # for over 10 s though it was there
        with pymongo.timeout(self.readiness.timeout):  # server selection included, which waits 30 s by default
            try:
                await self._mongo_probe.admin.command("hello")
            except pymongo.errors.OperationFailure as exc:
                if exc.code != 59:  # CommandNotFound: a server that knows the handshake by its older name only
                    raise
                await self._mongo_probe.admin.command("isMaster")

    def _sqlite(self, name: str):
        from ppa_runtime.sqlite import SqliteDb

        if name not in self._dbs:
            path = self.settings.data_dir / f"{self.settings.namespace}{name}.db"
            self._dbs[name] = SqliteDb(path, self.settings.sqlite_synchronous)
        return self._dbs[name]

    def _mongo_db(self, service: str):
        return self._mongo[f"{self.settings.namespace}ppa_{service}".replace(".", "_")]

    def docstore(self, service: str) -> DocStore:
        """The document store a service owns."""
        if self._mongo is not None:
            from ppa_runtime.docstore_mongo import MongoDocStore

            return MongoDocStore(self._mongo_db(service), self._update_gate, self._in_is_pass)
        from ppa_runtime.docstore_sqlite import SqliteDocStore

        return SqliteDocStore(self._sqlite(service))

    def eventstore(self, service: str) -> EventStore:
        """The event store a service owns."""
        if self._mongo is not None:
            from ppa_runtime.eventstore_mongo import MongoEventStore

            return MongoEventStore(self._mongo_db(service), self._update_gate)
        from ppa_runtime.eventstore_sqlite import SqliteEventStore

        return SqliteEventStore(self._sqlite(service))

    async def close(self) -> None:
        """Close every connection."""
        await self.bus.close()
        if self._mongo is not None:
            await self._mongo.close()
            await self._mongo_probe.close()
        for db in self._dbs.values():
            db.close()
