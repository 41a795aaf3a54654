"""Metering service wiring."""

from __future__ import annotations

from fastapi import APIRouter

from ppa_metering.daily_projection import DAILY, DailyProjection
from ppa_metering.devices import DEVICES, DeviceRegistry
from ppa_metering.ingest import READINGS, Ingestion
from ppa_runtime.consumer import ConsumerSpec
from ppa_runtime.service import Service


class MeteringService(Service):
    """Owns the device registry, raw readings and daily usage."""

    name = "metering"

    def __init__(self, runtime) -> None:
        super().__init__(runtime)
        self.devices = DeviceRegistry(self.docs.collection(DEVICES))
        self.ingestion = Ingestion(runtime.bus, self.docs.collection(READINGS))
        self.daily = DailyProjection(self, self.docs.collection(READINGS), self.docs.collection(DAILY), self.devices)

    async def start(self) -> None:
        await self.devices.setup()
        await self.ingestion.setup()
        await self.daily.setup()

    def routers(self) -> list[APIRouter]:
        from ppa_metering.api import router

        return [router(self.devices, self.ingestion, self.daily)]

    def consumers(self) -> list[ConsumerSpec]:
        return [self.devices.spec(), self.daily.spec()]
