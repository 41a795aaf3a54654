"""Metering service wiring."""

from __future__ import annotations

from fastapi import APIRouter

from ppa_metering.daily_projection import DAILY, STATES, DailyProjection
from ppa_metering.devices import DELETIONS, DEVICES, SERIALS, DeviceRegistry
from ppa_metering.ingest import Ingestion
from ppa_metering.interval_projection import INTERVAL_STATES, INTERVALS, MONTHS, YEARS, IntervalProjection
from ppa_metering.store import READINGS, ReadingStore
from ppa_runtime.auth import AgencyPasswords
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.service import Service


class MeteringService(Service):
    """Owns the device registry, raw readings, daily usage and half-hour usage."""

    name = "metering"

    def __init__(self, runtime) -> None:
        super().__init__(runtime)
        self.devices = DeviceRegistry(self.docs.collection(DEVICES), self.docs.collection(SERIALS),
                                      self.docs.collection(DELETIONS))
        self.store = ReadingStore(self.docs.collection(READINGS))
        self.ingestion = Ingestion(runtime.bus, self.store, runtime.readiness,
                                   runtime.settings.dependency_timeout_seconds)
        self.daily = DailyProjection(runtime.bus, self.store, self.docs.collection(DAILY),
                                     self.docs.collection(STATES), self.devices)
        self.intervals = IntervalProjection(self.store, self.docs.collection(INTERVALS), self.docs.collection(MONTHS),
                                            self.docs.collection(INTERVAL_STATES), self.devices,
                                            self.docs.collection(YEARS))
        self.agency_credentials = AgencyPasswords(self.name, self.docs)  # tokens of current passwords only

    async def start(self) -> None:
        await self.devices.setup()
        await self.daily.setup()
        await self.intervals.setup()

    def routers(self) -> list[APIRouter]:
        from ppa_metering.api import router

        return [router(self.devices, self.ingestion, self.daily)]

    def consumers(self) -> list[ConsumerSpec]:
        return [self.devices.spec(), self.daily.spec(), self.intervals.spec(), self.agency_credentials.spec()]
