"""Runtime rules that need no server: settings, log redaction, filter translation, update operators."""

from __future__ import annotations

import pytest

from ppa_runtime.docstore import apply_update
from ppa_runtime.docstore_sqlite import compile_filter
from ppa_runtime.logging import redact
from ppa_runtime.settings import Settings


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch):
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "PPA_SECRET_KEY", "PPA_SECRET_KEY_PREVIOUS", "PPA_ENV"):
        monkeypatch.delenv(name, raising=False)


def test_settings_refuse_no_key_outside_dev():
    with pytest.raises(ValueError, match="PPA_SECRET_KEY"):
        Settings(env="prod")
    assert Settings(env="prod", secret_key="x" * 40).env == "prod"


def test_settings_need_kafka_and_mongodb_together():
    with pytest.raises(ValueError, match="both"):
        Settings(kafka_bootstrap_servers="127.0.0.1:9092")
    assert Settings(kafka_bootstrap_servers="k:9092", mongodb_uri="mongodb://m/", secret_key="k" * 32).distributed


def test_secrets_are_redacted_from_log_events_at_any_depth():
    out = redact(None, "info", {"event": "x", "password": "hunter22", "ctx": {"auth_code": "ABC", "ok": 1},
                                "items": [{"token": "t"}]})
    assert out["password"] == "***" and out["ctx"] == {"auth_code": "***", "ok": 1}
    assert out["items"] == [{"token": "***"}]


def test_filters_compile_to_parameterised_sql():
    sql, params = compile_filter({"email": {"$regex": "a.b", "$options": "i"}, "n": {"$in": [1, 2]}})
    assert "?" in sql and "a.b" not in sql
    assert params == ["(?i)a.b", 1, 2]
    with pytest.raises(ValueError):
        compile_filter({"x') OR 1=1 --": 1})


def test_update_operators_apply_to_a_copy():
    doc = {"_id": "1", "n": 1, "tags": ["a"], "nested": {"x": 1}}
    out = apply_update(doc, {"$inc": {"n": 2}, "$push": {"tags": {"$each": ["b"]}}, "$set": {"nested.y": 2},
                             "$unset": {"nested.x": ""}, "$setOnInsert": {"created": True}}, inserting=False)
    assert out == {"_id": "1", "n": 3, "tags": ["a", "b"], "nested": {"y": 2}}
    assert doc == {"_id": "1", "n": 1, "tags": ["a"], "nested": {"x": 1}}


def test_standard_library_logs_are_json_lines(capsys):
    import json
    import logging

    from ppa_runtime.logging import configure

    configure("INFO", json=True)
    logging.getLogger("uvicorn.error").info("Started server %s", "x")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "Started server x" and record["level"] == "info" and "timestamp" in record


def test_a_record_that_is_no_event_is_shown_with_its_secrets_hidden():
    from ppa_contracts import dlq
    from ppa_contracts.topics import IDENTITY_AGENCY, NOTIFY_REQUESTS
    from ppa_runtime.bus import Record
    from ppa_runtime.ops.events import HIDDEN, invalid_view

    link = "https://ppa.example.jp/mypage/reset?token=s3cret"
    text = Record(NOTIFY_REQUESTS, 0, 7, raw={"type": "x", "data": f'{{"context": {{"link": "{link}"'})
    assert invalid_view(text)["envelope"] == {"type": "x", "data": HIDDEN}
    assert invalid_view(text)["key"] == f"{NOTIFY_REQUESTS}/0/7"
    letter = Record(dlq(NOTIFY_REQUESTS), 0, 1, raw={"data": {"original": {"data": {"context": {"link": link}}}}})
    assert link not in str(invalid_view(letter))
    elsewhere = Record(IDENTITY_AGENCY, 1, 2, raw={"password": "hunter2", "data": "[1, 2"})
    assert invalid_view(elsewhere)["envelope"] == {"password": "［非表示］", "data": "[1, 2"}


async def test_a_cancelled_sqlite_read_keeps_the_reader_until_its_thread_is_done(tmp_path):
    import asyncio
    import threading
    import time

    from ppa_runtime.sqlite import SqliteDb

    db = SqliteDb(tmp_path / "t.sqlite")
    await db.write(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
    await db.write(lambda c: c.execute("INSERT INTO t VALUES (1)"))
    started, finished = threading.Event(), threading.Event()

    def slow(conn):
        started.set()
        time.sleep(0.3)
        value = conn.execute("SELECT n FROM t").fetchone()[0]
        finished.set()
        return value

    reading = asyncio.create_task(db.read(slow))
    while not started.is_set():
        await asyncio.sleep(0.01)
    reading.cancel()  # e.g. a live tail whose browser went away
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert finished.is_set()  # the cancelled read gave the connection back only once its thread was done
    # the next read has the reader connection to itself (no transaction inside another's)
    assert await db.read(lambda c: c.execute("SELECT COUNT(*) FROM t").fetchone()[0]) == 1
    db.close()


class _OneRow:
    """A connection whose every query answers one row: the flat JSON array of a picked read."""

    def __init__(self, text: str) -> None:
        self.text = text

    def execute(self, sql: str, params: tuple) -> _OneRow:
        return self

    def fetchone(self) -> tuple[str]:
        return (self.text,)


@pytest.mark.parametrize(("fields", "flat", "picks", "whole"), [
    (("$.a", "$.b"), '[3,null,"x3",30, 1,null,"x1",10, 2,"{\\"a\\":\\"x2\\"}","x2",20]',
     [("x1", 10), ("x2", 20), ("x3", 30)], [False, True, False]),
    (("$.a",), '[2,"{}","v2","v2", 1,null,"v1","v1"]', [("v1",), ("v2",)], [False, True]),
])
def test_picked_values_are_handed_over_in_offset_order_each_with_its_own(fields, flat, picks, whole):
    """SQLite does not promise that an aggregate sees the rows of an ordered subquery in that order."""
    from ppa_runtime.bus_sqlite import SqliteSubscription

    sub = SqliteSubscription(None, "g", ["t"], fields, frozenset({"bare"}))  # type: ignore[arg-type]
    records = sub._read_picked(_OneRow(flat), {"t": 0}, 100)  # type: ignore[arg-type]
    assert [r.offset for r in records] == list(range(1, len(picks) + 1))
    assert [r.pick(fields) for r in records] == picks
    assert [r.whole for r in records] == whole


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("fields", [(), ("$.type", "$.subject")], ids=["whole", "picked"])
async def test_each_record_of_a_split_topic_goes_to_the_one_shard_its_subject_leads_to(tmp_path, count, fields):
    """The embedded log tells shards apart by a pattern of the key, as Shard.of does in Python (the Kafka bus and
    the handlers use that): every record of a split topic is one shard's, of another topic every shard's; after a
    shard's own records, one `skip` record at the topic's end lets its commits pass the other shards' records."""
    from ppa_contracts import Envelope
    from ppa_runtime.bus_sqlite import SqliteBus
    from ppa_runtime.consumer import Shard
    from ppa_runtime.sqlite import SqliteDb

    db = SqliteDb(tmp_path / "bus.sqlite")
    bus = SqliteBus(db)
    await bus.start()
    # customer numbers, invoice numbers (YYMM + customer number), and subjects without a digit 4th from the end
    subjects = ["1120230030", "1120241001", "1120252999", "1120263000", "1120274123", "1120285555", "1120296001",
                "1120307999", "1120318000", "1120329001", "24011120241001", "24021120230030", "x", "", "abc", "12a456",
                "112023\u0663999"]

    def event(subject: str) -> Envelope:
        return Envelope(source="/t", type="t.happened", subject=subject, correlationid="c", data={"s": subject})

    await bus.publish("split", [event(s) for s in subjects])
    await bus.publish("whole", [event(s) for s in ("agency-1", "1120241001")])
    owned: dict[str, list[set[str]]] = {"split": [], "whole": []}
    for index in range(count):
        shard = Shard(index, count, frozenset({"split"}), -4)
        sub = await bus.subscribe(f"g{index}", ["split", "whole"], fields, frozenset({"t.happened"}), shard)
        records = await sub.fetch(timeout=0.1, max_records=100)
        mine = [r for r in records if not r.skip]
        passed = [(r.topic, r.offset) for r in records if r.skip]
        last = [r.offset for r in mine if r.topic == "split"][-1]
        assert passed == ([] if last == len(subjects) - 1 else [("split", len(subjects) - 1)])
        for topic in owned:
            got = [r.pick(fields)[1] if fields else r.envelope.subject for r in mine if r.topic == topic]
            owned[topic].append(set(got))
        await sub.commit(records)
        assert [p.lag for p in await bus.lag(f"g{index}", ["split", "whole"])] == [0, 0]
        await sub.close()
    for index, mine in enumerate(owned["split"]):
        assert mine == {s for s in subjects if Shard(index, count, frozenset({"split"}), -4).of(s) == index}
    assert set().union(*owned["split"]) == set(subjects) and sum(map(len, owned["split"])) == len(subjects)
    assert owned["whole"] == [{"agency-1", "1120241001"}] * count
    db.close()


def test_a_shard_is_one_of_at_most_ten_by_a_digit_counted_from_the_end():
    from ppa_runtime.consumer import Shard

    shard = Shard(1, 2, frozenset({"t"}), -4)
    assert [shard.of(s) for s in ("1120241001", "1120240001", "24011120241001", "x", "a1b2", "")] == [1, 0, 1, 0, 0, 0]
    assert shard.owns("t", "1120241001") and not shard.owns("t", "1120240001") and shard.owns("other", "1120240001")
    assert shard.group("billing.invoice-list") == "billing.invoice-list.shard1of2"
    assert Shard(2, 3, frozenset(), -1).digits() == "258"
    for bad in ((2, 2, -4), (0, 11, -4), (0, 2, 0)):
        with pytest.raises(ValueError):
            Shard(bad[0], bad[1], frozenset(), bad[2])
    assert Settings(consumer_shards=" billing.invoice-list=2 ,x=1").shards_of("billing.invoice-list") == 2
    assert Settings().shards_of("billing.invoice-list") == 1
    with pytest.raises(ValueError):
        Settings(consumer_shards="billing.invoice-list=many")


def test_topic_partitions_are_set_per_catalog_topic_with_a_default():
    settings = Settings(topic_partitions=" ppa.metering.readings.v1=12, default=2 ,ppa.ops.audit.v1.dlq=1")
    assert settings.partitions() == {"ppa.metering.readings.v1": 12, "default": 2, "ppa.ops.audit.v1.dlq": 1}
    assert Settings().partitions() == {}


@pytest.mark.parametrize("text", ["ppa.metering.readings.v1", "ppa.metering.readings.v1=0", "default=1001",
                                  "ppa.metering.reading.v1=3", "default=two"])
def test_a_malformed_topic_partitions_setting_stops_the_process(text):
    with pytest.raises(ValueError, match="PPA_TOPIC_PARTITIONS"):
        Settings(topic_partitions=text)


def test_a_topic_has_the_partitions_set_for_it_its_dead_letters_those_of_their_topic():
    from ppa_runtime.bus_kafka import KafkaBus

    unset = KafkaBus("127.0.0.1:9", "t_")
    assert [unset.partitions_of(n) for n in ("ppa.metering.readings.v1", "ppa.metering.readings.v1.dlq",
                                             "ppa.billing.invoice.v1", "ppa.ops.audit.v1")] == [6, 6, 3, 1]
    bus = KafkaBus("127.0.0.1:9", "t_", partitions={"ppa.metering.readings.v1": 12, "default": 2,
                                                    "ppa.ops.audit.v1.dlq": 1})
    assert [bus.partitions_of(n) for n in ("ppa.metering.readings.v1", "ppa.metering.readings.v1.dlq",
                                           "ppa.billing.invoice.v1", "ppa.ops.audit.v1", "ppa.ops.audit.v1.dlq")
            ] == [12, 12, 2, 2, 1]


def test_settings_refuse_no_key_on_kafka_and_mongodb_and_keys_that_are_short_or_placeholders():
    with pytest.raises(ValueError, match="PPA_SECRET_KEY is not set"):
        Settings(kafka_bootstrap_servers="k:9092", mongodb_uri="mongodb://m/")
    with pytest.raises(ValueError, match="at least 32"):
        Settings(secret_key="short")
    with pytest.raises(ValueError, match="at least 32"):
        Settings(secret_key="REPLACE-ME-with-at-least-32-random-bytes")
    assert Settings(secret_key="", secret_key_previous="").secret_key is None  # compose's empty `${X:-}`
    assert "y" * 40 not in repr(Settings(secret_key="y" * 40))


def test_an_embedded_install_keeps_one_private_key_in_its_data_dir(tmp_path):
    from ppa_runtime.keys import signing_keys

    first = signing_keys(Settings(data_dir=tmp_path))
    again = signing_keys(Settings(data_dir=tmp_path))
    other = signing_keys(Settings(data_dir=tmp_path / "other"))
    assert first.generated and not again.generated and again.current == first.current != other.current
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert first.current not in repr(first)
    given = signing_keys(Settings(data_dir=tmp_path / "given", secret_key="z" * 40))
    assert given.current == "z" * 40 and given.source == "PPA_SECRET_KEY" and not (tmp_path / "given").exists()


def test_the_previous_key_still_verifies_but_never_signs():
    from ppa_runtime.auth import issue_agency_token, read_agency_token
    from ppa_runtime.keys import SigningKeys

    old, new = "o" * 40, "n" * 40
    rotated = SigningKeys(new, old, "PPA_SECRET_KEY")
    before = issue_agency_token([old], "ag1", "a@example.jp", 3)
    assert read_agency_token(rotated.verifying, before).password_version == 3
    after = issue_agency_token(rotated.verifying, "ag1", "a@example.jp", 3)
    assert read_agency_token([new], after) is not None and read_agency_token([old], after) is None
    assert read_agency_token([new], before) is None  # once the previous key is removed


def test_spreadsheet_cells_neutralise_formula_starts_but_not_numbers():
    from decimal import Decimal

    from ppa_runtime.spreadsheet import safe_cell

    for text in ("=1+1", "+1+1", "-2+3", "@SUM(1)", "\t=1", "\r=1", "-", "=", "-1.5e3"):
        assert safe_cell(text) == "'" + text
    for value in ("-1.50", "+3", "-980", "山田", "", "1=1", Decimal("-1.50"), -3, None):
        assert safe_cell(value) == value


def test_a_slow_mongodb_command_is_logged_with_its_shape_and_none_of_its_values():
    from datetime import timedelta

    import structlog
    from pymongo import monitoring

    from ppa_runtime.docstore_mongo import CommandCounter

    secret = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
    find = {"find": "device_serials", "filter": {"auth_code_hash": secret, "_id": {"$in": ["A", "B"]}},
            "sort": {"customer_number": 1}}
    update = {"update": "invoice_lines", "updates": [{"q": {"_id": "x"}, "u": {"$set": {"a": 1}}}] * 3}
    address = ("127.0.0.1", 27017)

    def run(listener: CommandCounter, command: dict, request_id: int, took: timedelta) -> None:
        name = next(iter(command))
        listener.started(monitoring.CommandStartedEvent(command, "ppa_metering", request_id, address, None))
        listener.succeeded(monitoring.CommandSucceededEvent(took, {"ok": 1}, name, request_id, address, None,
                                                            database_name="ppa_metering"))

    with structlog.testing.capture_logs() as logs:
        slow = CommandCounter(slow_ms=100)
        run(slow, find, 1, timedelta(milliseconds=250))
        run(slow, find, 2, timedelta(milliseconds=20))  # quick: not logged
        run(slow, update, 3, timedelta(seconds=2))
        run(CommandCounter(), find, 4, timedelta(seconds=5))  # no threshold: nothing logged, nothing kept
    assert [(e["event"], e["ms"], e["command"], e["collection"]) for e in logs] == [
        ("mongodb_command_slow", 250, "find", "device_serials"),
        ("mongodb_command_slow", 2000, "update", "invoice_lines")]
    assert logs[0]["filter"] == {"auth_code_hash": "?", "_id": {"$in": "[2]"}}
    assert logs[0]["sort"] == {"customer_number": "?"}
    assert logs[1]["updates[0].q"] == {"_id": "?"} and logs[1]["updates"] == 3
    assert secret not in repr(logs) and "'A'" not in repr(logs)
    assert slow._asked == {}
