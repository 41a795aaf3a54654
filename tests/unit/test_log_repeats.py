"""A warning or error that repeats is written once, then once per interval with its count and duration."""

from __future__ import annotations

import json
import logging

import structlog

from ppa_runtime import logging as ppa_logging
from ppa_runtime.logging import Repeats


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_passes_the_rest_are_counted_and_written_once_per_interval():
    clock = Clock()
    gate = Repeats(10, clock)
    key = ("aiokafka.client", logging.ERROR, "Unable connect to node with id %s: %s")
    written = []
    for _ in range(25):  # 25 s of one attempt every 0.2 s... the first passes
        for _ in range(5):
            fields = gate.admit(key, "aiokafka.client", logging.ERROR, "Unable connect to node with id 1")
            if fields is not None:
                written.append((clock.now, fields))
            clock.now += 0.2
    assert written[0] == (1000.0, {})
    assert [f for _, f in written[1:]] == [{"repeated": 49, "for_seconds": 10}, {"repeated": 49, "for_seconds": 20}]
    assert gate.due() == []  # held lines wait for their interval
    clock.now += 10  # the errors stopped: the held count is written once, then the run is forgotten
    (run, fields), = gate.due()
    assert run.message == "Unable connect to node with id 1" and fields["repeated"] == 24
    assert fields["for_seconds"] == 25 and fields["last_seconds_ago"] == 10
    clock.now += 11
    assert gate.due() == [] and gate.runs == {}
    assert gate.admit(key, "aiokafka.client", logging.ERROR, "again") == {}  # a new outage: at once


def test_info_lines_pass_and_a_process_writes_repeats_as_json_with_count(capsys):
    ppa_logging.configure("INFO", json=True, repeat_seconds=60)
    try:
        log = structlog.get_logger("test")
        for _ in range(3):
            log.info("partitions_assigned", group="g")
        for _ in range(50):
            log.warning("relay_failed", service="identity", error="KafkaConnectionError()")
            logging.getLogger("aiokafka.client").error("Unable connect to node with id %s: %s", 1, "refused")
        ppa_logging.REPEATS.interval = 0  # as if the interval were over: the held counts are written
        assert ppa_logging.flush() == 2
    finally:
        ppa_logging.configure("INFO", json=True)
    written = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [w["event"] for w in written].count("partitions_assigned") == 3
    relay = [w for w in written if w["event"] == "relay_failed"]
    client = [w for w in written if w["event"].startswith("Unable connect")]
    assert len(relay) == 2 and len(client) == 2
    assert relay[1]["repeated"] == 49 and relay[1]["service"] == "identity" and relay[1]["level"] == "warning"
    assert client[1]["repeated"] == 49 and client[1]["logger"] == "aiokafka.client" and client[1]["level"] == "error"


def test_the_kafka_clients_wait_for_a_group_coordinator_is_not_an_error(capsys):
    from aiokafka.errors import GroupCoordinatorNotAvailableError, NodeNotReadyError

    ppa_logging.configure("INFO", json=True)
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    coordinator.error("Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError())
    coordinator.error("Group Coordinator Request failed: %s", NodeNotReadyError("node 1"))
    written = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [w["event"] for w in written] == ["Group Coordinator Request failed: NodeNotReadyError: node 1"]
