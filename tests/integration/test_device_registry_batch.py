"""Metering's device registry applies a batch of customer events at once (an import's registrations in a handful of
round trips) and ends exactly where applying them one by one ends, also when the batch comes again; both runtimes."""

from __future__ import annotations

from support import portal

from ppa_billing.customers import stream_of
from ppa_contracts.topics import BILLING_CUSTOMER
from ppa_metering.devices import DeviceRegistry
from ppa_runtime.bus import Record

HEADER = "顧客番号,製造番号,氏名,氏名(カナ),契約開始日,契約終了日,基本料金(円),売電単価(円),利用単価(円),メールアドレス"
ROWS = 20


def csv_of(count: int) -> bytes:
    rows = [f"11{n:08d},DEV{n:08d},顧客{n:04d},コキャク,2024/01/16,,980,16.00,27.00," for n in range(1, count + 1)]
    return ("\r\n".join([HEADER, *rows]) + "\r\n").encode()


async def state(registry: DeviceRegistry) -> tuple[list[dict], list[dict], list[dict]]:
    """Everything the registry keeps, in a stable order."""
    out = []
    for coll in (registry.coll, registry.serials, registry.deletions):
        out.append([dict(sorted(d.items())) for d in sorted(await coll.find({}), key=lambda d: d["_id"])])
    return out[0], out[1], out[2]


async def test_a_batch_of_registrations_and_a_mixed_batch_end_as_one_by_one(runtime):
    async with portal(runtime, ["identity", "billing", "metering"]) as p:
        a = p.tokens["a"]
        imported = await p.client.post("/api/v1/customer-imports", content=csv_of(ROWS),
                                       headers={**a, "Content-Type": "text/csv"})
        assert imported.status_code == 200 and imported.json()["counts"]["new"] == ROWS, imported.text
        billing, docs = p.host.service("billing"), p.host.service("metering").docs

        async def history(n: int) -> list:
            return await billing.events.read(stream_of(p.agency_ids["a"], f"11{n:08d}"))

        registered = [env for n in range(1, ROWS + 1) for env in await history(n)]
        assert len(registered) == ROWS and {e.type.rsplit(".", 2)[1] for e in registered} == {"customer_registered"}

        def fresh(name: str) -> DeviceRegistry:
            return DeviceRegistry(docs.collection(f"{name}_devices"), docs.collection(f"{name}_serials"),
                                  docs.collection(f"{name}_deletions"))

        def records(envs: list) -> list[Record]:
            return [Record(BILLING_CUSTOMER, 0, i, env) for i, env in enumerate(envs)]

        batched, single = fresh("batched"), fresh("single")
        one_by_one = []
        real = batched.on_event

        async def counted(event, env):
            one_by_one.append(env.id)
            await real(event, env)

        batched.on_event = counted  # registrations alone never take the event-by-event way
        await batched.on_batch(records(registered))
        assert one_by_one == []
        for env in registered:
            await single.on_event(env.payload(), env)
        after_registrations = await state(single)
        assert await state(batched) == after_registrations
        devices, serials, _ = after_registrations
        assert len(devices) == ROWS and [s["_id"] for s in serials] == [f"DEV{n:08d}" for n in range(1, ROWS + 1)]

        await batched.on_batch(records(registered))  # redelivered whole: nothing changes, still no event path
        assert one_by_one == [] and await state(batched) == after_registrations

        # a serial moved, a customer deleted: their whole histories in one batch take the event-by-event way
        moved = await p.client.patch("/api/v1/customers/1100000002", json={"serial_number": "DEV99999999"}, headers=a)
        assert moved.status_code == 200, moved.text
        assert (await p.client.delete("/api/v1/customers/1100000003", headers=a)).status_code == 204
        mixed = [*await history(2), *await history(3), *await history(4)]
        assert [e.type.rsplit(".", 2)[1] for e in mixed] == [
            "customer_registered", "customer_changed", "customer_registered", "customer_deleted",
            "customer_registered"]
        await batched.on_batch(records(mixed))
        assert one_by_one == [e.id for e in mixed]
        for env in mixed:
            await single.on_event(env.payload(), env)
        devices, serials, deletions = await state(batched)
        assert (devices, serials, deletions) == await state(single)
        found = {s["_id"]: s["customer"] for s in serials}
        assert "DEV00000002" not in found and found["DEV99999999"].endswith(":1100000002")
        assert "DEV00000003" not in found and [d["_id"].rsplit(":", 1)[1] for d in deletions] == ["1100000003"]
        assert len(devices) == ROWS - 1
