"""The groups that apply customer events (metering's device registry, billing's customer read model, which the month
list applies too) take a batch of registrations at once (an import's, in a handful of round trips) and end exactly
where applying the events one by one ends, also when the batch comes again; anything else goes event by event;
both runtimes."""

from __future__ import annotations

from support import portal

from ppa_billing.customers import Customers, stream_of
from ppa_contracts.topics import BILLING_CUSTOMER
from ppa_metering.devices import DeviceRegistry
from ppa_runtime.bus import Record

HEADER = "顧客番号,製造番号,氏名,氏名(カナ),契約開始日,契約終了日,基本料金(円),売電単価(円),利用単価(円),メールアドレス"
ROWS = 20


def csv_of(count: int) -> bytes:
    rows = [f"11{n:08d},DEV{n:08d},顧客{n:04d},コキャク,2024/01/16,,980,16.00,27.00," for n in range(1, count + 1)]
    return ("\r\n".join([HEADER, *rows]) + "\r\n").encode()


async def state(registry: DeviceRegistry | Customers) -> tuple[list[dict], list[dict], list[dict]]:
    """Everything the registry keeps, in a stable order."""
    out = []
    colls = (registry.coll, registry.serials, registry.deletions) if isinstance(registry, DeviceRegistry) else (
        registry.coll, registry.deletions, registry.deletions)
    for coll in colls:
        out.append([dict(sorted(d.items())) for d in sorted(await coll.find({}), key=lambda d: d["_id"])])
    return out[0], out[1], out[2]


async def imported(p) -> tuple:
    """Import ROWS customers; their registration events and a reader of a customer's events."""
    r = await p.client.post("/api/v1/customer-imports", content=csv_of(ROWS),
                            headers={**p.tokens["a"], "Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["counts"]["new"] == ROWS, r.text
    billing = p.host.service("billing")

    async def history(n: int) -> list:
        return await billing.events.read(stream_of(p.agency_ids["a"], f"11{n:08d}"))

    registered = [env for n in range(1, ROWS + 1) for env in await history(n)]
    assert len(registered) == ROWS and {e.type.rsplit(".", 2)[1] for e in registered} == {"customer_registered"}
    return registered, history


async def change_two(p, history) -> list:
    """A serial moved (customer 2), a customer deleted (3): the histories of 2, 3 and 4 in order."""
    a = p.tokens["a"]
    moved = await p.client.patch("/api/v1/customers/1100000002", json={"serial_number": "DEV99999999"}, headers=a)
    assert moved.status_code == 200, moved.text
    assert (await p.client.delete("/api/v1/customers/1100000003", headers=a)).status_code == 204
    mixed = [*await history(2), *await history(3), *await history(4)]
    assert [e.type.rsplit(".", 2)[1] for e in mixed] == [
        "customer_registered", "customer_changed", "customer_registered", "customer_deleted", "customer_registered"]
    return mixed


def spied(target, name: str) -> list:
    """Record the events that take `target`'s event-by-event way (its method `name`, still called)."""
    calls: list = []
    real = getattr(target, name)

    async def counted(event, *rest):
        calls.append(event.customer_number)
        await real(event, *rest)

    setattr(target, name, counted)
    return calls


async def test_the_device_registry_applies_registrations_at_once_and_ends_as_one_by_one(runtime):
    async with portal(runtime, ["identity", "billing", "metering"]) as p:
        registered, history = await imported(p)
        docs = p.host.service("metering").docs

        def fresh(name: str) -> DeviceRegistry:
            return DeviceRegistry(docs.collection(f"{name}_devices"), docs.collection(f"{name}_serials"),
                                  docs.collection(f"{name}_deletions"))

        def records(envs: list) -> list[Record]:
            return [Record(BILLING_CUSTOMER, 0, i, env) for i, env in enumerate(envs)]

        batched, single = fresh("batched"), fresh("single")
        one_by_one = spied(batched, "on_event")  # registrations alone never take the event-by-event way
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
        mixed = await change_two(p, history)
        await batched.on_batch(records(mixed))
        assert one_by_one == [e.payload().customer_number for e in mixed]
        for env in mixed:
            await single.on_event(env.payload(), env)
        devices, serials, deletions = await state(batched)
        assert (devices, serials, deletions) == await state(single)
        found = {s["_id"]: s["customer"] for s in serials}
        assert "DEV00000002" not in found and found["DEV99999999"].endswith(":1100000002")
        assert "DEV00000003" not in found and [d["_id"].rsplit(":", 1)[1] for d in deletions] == ["1100000003"]
        assert len(devices) == ROWS - 1


async def test_the_customer_read_model_applies_registrations_at_once_and_ends_as_one_by_one(runtime):
    async with portal(runtime, ["identity", "billing"]) as p:
        registered, history = await imported(p)
        live = p.host.service("billing").customers
        before = await state(live)
        assert len(before[0]) == ROWS  # the import wrote the read model itself
        calls = spied(live, "apply")
        await live.apply_many([(e.payload(), e.aggregateversion, e.time) for e in registered])  # its group's turn
        assert calls == [] and await state(live) == before

        def fresh(name: str) -> Customers:
            c = Customers(p.host.service("billing"), p.host.service("billing").docs)
            c.coll, c.deletions = c.service.docs.collection(f"{name}_customers"), c.service.docs.collection(
                f"{name}_deletions")
            return c

        batched, single = fresh("batched"), fresh("single")
        one_by_one = spied(batched, "apply")
        applied = [(e.payload(), e.aggregateversion, e.time) for e in registered]
        await batched.apply_many(applied)
        for event in applied:
            await single.apply(*event)
        assert one_by_one == [] and await state(batched) == await state(single)
        assert [d["customer_number"] for d in (await state(batched))[0]] == [f"11{n:08d}" for n in range(1, ROWS + 1)]
        await batched.apply_many(applied)  # again: nothing changes
        assert one_by_one == [] and await state(batched) == await state(single)

        mixed = [(e.payload(), e.aggregateversion, e.time) for e in await change_two(p, history)]
        await batched.apply_many(mixed)
        for event in mixed:
            await single.apply(*event)
        assert one_by_one == [e.customer_number for e, _, _ in mixed]
        customers, deletions, _ = await state(batched)
        assert (customers, deletions) == (await state(single))[:2]
        assert len(customers) == ROWS - 1 and [d["_id"].rsplit(":", 1)[1] for d in deletions] == ["1100000003"]
        assert {d["customer_number"]: d["serial_number"] for d in customers}["1100000002"] == "DEV99999999"
