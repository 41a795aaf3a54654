"""Probe: real Kafka via aiokafka (admin create/list/describe, produce+consume with headers, commit, auto-create).
Run: bash .ci/kafka.sh start /tmp/k && . /tmp/k/kafka.env && python .ci/probes/kafka_check.py"""
import asyncio, os, time, uuid
from aiokafka import AIOKafkaProducer, AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

BS = os.environ["KAFKA_BOOTSTRAP_SERVERS"]

async def main():
    t0 = time.monotonic()
    admin = AIOKafkaAdminClient(bootstrap_servers=BS)
    await admin.start()
    topic = f"t-{uuid.uuid4().hex[:8]}"
    await admin.create_topics([NewTopic(name=topic, num_partitions=3, replication_factor=1)])
    topics = await admin.list_topics()
    assert topic in topics, topics
    desc = await admin.describe_topics([topic])
    print("created topic", topic, "partitions:", len(desc[0]["partitions"]))
    await admin.close()

    prod = AIOKafkaProducer(bootstrap_servers=BS, acks="all", enable_idempotence=True)
    await prod.start()
    md = await prod.send_and_wait(topic, b"hello", key=b"k1",
                                  headers=[("trace-id", b"abc"), ("kind", b"test")])
    print("produced to partition", md.partition, "offset", md.offset)
    await prod.stop()

    cons = AIOKafkaConsumer(topic, bootstrap_servers=BS, group_id="g-" + topic,
                            auto_offset_reset="earliest", enable_auto_commit=False)
    await cons.start()
    msg = await asyncio.wait_for(cons.getone(), 30)
    print("consumed", msg.key, msg.value, msg.headers)
    assert msg.value == b"hello" and dict(msg.headers)["trace-id"] == b"abc"
    await cons.commit()
    from aiokafka import TopicPartition
    committed = await cons.committed(TopicPartition(topic, msg.partition))
    assert committed == 1, committed
    print("committed offset", committed)
    await cons.stop()

    # auto-created topic via produce
    prod = AIOKafkaProducer(bootstrap_servers=BS)
    await prod.start()
    md = await prod.send_and_wait("auto-" + topic, b"x")
    print("auto-create topic ok, partition", md.partition)
    await prod.stop()
    print(f"KAFKA OK in {time.monotonic()-t0:.1f}s")

asyncio.run(main())
