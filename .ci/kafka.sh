#!/usr/bin/env bash
# Start/stop a real single-node Apache Kafka broker (KRaft, no ZooKeeper) on
# loopback for CI, without Docker and without the Kafka binary tarball: the
# broker jars come from Maven Central through mvn (.ci/kafka/pom.xml).
#
#   bash .ci/kafka.sh start <workdir>   # prints KAFKA_BOOTSTRAP_SERVERS=... last
#   bash .ci/kafka.sh stop  <workdir>
#   bash .ci/kafka.sh restart <workdir> # after stop: the same broker again, same
#                                       # ports, its data kept (outage tests)
#
# Jars are cached in ~/.cache/ppa-ci/kafka-<version>/libs; a second run does
# no downloads (mvn is not even started). Each `start` formats a fresh, empty
# log directory under <workdir>; `stop` keeps it for `restart`.
#
# Environment overrides:
#   KAFKA_VERSION        (default 4.4.0)
#   KAFKA_LOG4J_VERSION  (default 2.25.5, the log4j2 that Kafka 4.4.0 uses)
#   KAFKA_HEAP_OPTS      (default "-Xms512m -Xmx1536m")
#   KAFKA_JVM_OPTS       (default "-XX:TieredStopAtLevel=1 -XX:+UseG1GC
#                         -XX:MaxGCPauseMillis=20"; set "" for full JIT)
#   PPA_CI_CACHE         (default ~/.cache/ppa-ci)
#   KAFKA_START_TIMEOUT  seconds (default 90)
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_LOG4J_VERSION="${KAFKA_LOG4J_VERSION:-2.25.5}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx1536m}"
# C1-only JIT: halves start-up time on a 2-core CI box (C2 compiler threads
# compete with start-up); plenty fast for functional tests. Set to "" (or
# e.g. "-XX:+UseG1GC") for benchmarks.
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS--XX:TieredStopAtLevel=1 -XX:+UseG1GC -XX:MaxGCPauseMillis=20}"
CACHE_ROOT="${PPA_CI_CACHE:-$HOME/.cache/ppa-ci}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIBS="$CACHE_ROOT/kafka-$KAFKA_VERSION/libs"
# maven-dependency-plugin pinned: Maven 3.8's default (2.8) is ancient.
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

die() { echo "kafka.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop|restart <workdir>"; }

# ---------------------------------------------------------------- jars
fetch_jars() {
    [ -f "$LIBS/.complete" ] && return 0
    command -v mvn >/dev/null 2>&1 || die "mvn not found in PATH"
    command -v java >/dev/null 2>&1 || die "java not found in PATH"
    local tmp="$LIBS.tmp.$$" log="$CACHE_ROOT/kafka-$KAFKA_VERSION/mvn.log"
    mkdir -p "$CACHE_ROOT/kafka-$KAFKA_VERSION"
    # Serialise concurrent first runs (the lock is released on exit too).
    exec 9>"$CACHE_ROOT/kafka-$KAFKA_VERSION/.lock"
    flock 9
    if [ -f "$LIBS/.complete" ]; then
        exec 9>&-
        return 0
    fi
    rm -rf "$tmp"
    if ! mvn -q -B -f "$HERE/kafka/pom.xml" \
            -Dkafka.version="$KAFKA_VERSION" \
            -Dlog4j.version="$KAFKA_LOG4J_VERSION" \
            "$DEP_PLUGIN:copy-dependencies" \
            -DincludeScope=runtime \
            -DoutputDirectory="$tmp" \
            >"$log" 2>&1; then
        tail -n 40 "$log" >&2 || true
        rm -rf "$tmp"
        die "mvn could not resolve Kafka $KAFKA_VERSION (log: $log)"
    fi
    ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 \
        || die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn (log: $log)"
    touch "$tmp/.complete"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    exec 9>&-
}

# ---------------------------------------------------------------- helpers
# Prints two distinct free loopback ports: "<broker> <controller>".
free_ports() {
    python3 - <<'PY'
import socket
socks = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# Kafka's Uuid.toString(): url-safe base64 of 16 random bytes, no padding.
cluster_id() {
    python3 -c 'import base64,uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))'
}

# Is $1 a live process running kafka.Kafka?
is_ours() {
    local pid="$1"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
}

# Wait until the broker answers a Kafka Metadata request listing itself
# (i.e. it has joined the KRaft quorum, is unfenced and serves clients).
wait_ready() {
    local port="$1" pid="$2" timeout="$3"
    python3 - "$port" "$pid" "$timeout" <<'PY'
import os, socket, struct, sys, time

port, pid, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
CLIENT = b"ci-ready"

def request(s, api_key, version, corr, body):
    hdr = struct.pack(">hhih", api_key, version, corr, len(CLIENT)) + CLIENT
    msg = hdr + body
    s.sendall(struct.pack(">i", len(msg)) + msg)
    (n,) = struct.unpack(">i", recv_exact(s, 4))
    data = recv_exact(s, n)
    (rcorr,) = struct.unpack(">i", data[:4])
    if rcorr != corr:
        raise RuntimeError("correlation id mismatch")
    return data[4:]

def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf

def metadata_range(s):
    # ApiVersions v0: error_code int16, [api_key int16, min int16, max int16]
    r = request(s, 18, 0, 1, b"")
    err, n = struct.unpack(">hi", r[:6])
    if err:
        raise RuntimeError(f"ApiVersions error {err}")
    for i in range(n):
        key, lo, hi = struct.unpack(">hhh", r[6 + 6 * i:12 + 6 * i])
        if key == 3:
            return lo, hi
    raise RuntimeError("broker does not list Metadata")

def broker_count(s, v):
    # Metadata v1..v8 (non-flexible); topics = null (all topics).
    body = struct.pack(">i", -1)
    if v >= 4:
        body += b"\x00"          # allow_auto_topic_creation
    if v >= 8:
        body += b"\x00\x00"      # include_*_authorized_operations
    r = request(s, 3, v, 2, body)
    off = 4 if v >= 3 else 0     # throttle_time_ms
    (n,) = struct.unpack(">i", r[off:off + 4])
    return n

deadline = time.monotonic() + timeout
last = "no attempt"
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        print(f"kafka process {pid} exited", file=sys.stderr)
        sys.exit(2)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.settimeout(5)
            lo, hi = metadata_range(s)
            v = min(hi, 8)
            if v < max(lo, 1):
                sys.exit(0)  # only flexible Metadata versions: ApiVersions ok is enough
            n = broker_count(s, v)
            if n >= 1:
                sys.exit(0)
            last = "metadata lists no broker yet"
    except (OSError, RuntimeError, struct.error) as e:
        last = repr(e)
    time.sleep(0.3)
print(f"kafka not ready after {timeout:.0f}s: {last}", file=sys.stderr)
sys.exit(1)
PY
}

# ---------------------------------------------------------------- commands
start() {
    local work="$1"
    mkdir -p "$work"
    work="$(cd "$work" && pwd)"
    local pidfile="$work/kafka.pid" envfile="$work/kafka.env"
    local log="$work/kafka-server.log" out="$work/kafka-stdout.log"

    if [ -f "$pidfile" ] && is_ours "$(cat "$pidfile")" && [ -f "$envfile" ]; then
        # Already running: idempotent.
        sed -n 's/^export //p' "$envfile" | tail -n 1
        return 0
    fi
    rm -f "$pidfile" "$envfile"

    fetch_jars

    local ports bport cport cid data
    ports="$(free_ports)"
    bport="${ports% *}"
    cport="${ports#* }"
    cid="$(cluster_id)"
    data="$work/kafka-data"
    rm -rf "$data"
    rm -f "$log" "$out"
    mkdir -p "$data"

    cat >"$work/server.properties" <<EOF
# Generated by .ci/kafka.sh - single-node KRaft broker+controller for CI.
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$bport
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:$cport
log.dirs=$data
num.partitions=3
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF

    # log4j2 (Kafka 4.x dropped log4j 1.x). Properties syntax is understood
    # by log4j-core itself; no extra jar needed.
    cat >"$work/kafka-log4j2.properties" <<EOF
status = warn
name = ci-kafka
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
# One INFO line ("Kafka Server started") as a start-up marker.
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
EOF

    format_storage "$work" "$cid"
    launch "$work" "$bport"
}

jvm_of() {
    local work="$1"
    # shellcheck disable=SC2206 # word splitting of the *_OPTS is intended
    JVM=(java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS
        -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$work/kafka-log4j2.properties"
        -Dkafka.logs.dir="$work"
        -cp "$LIBS/*")
}

format_storage() {
    local work="$1" cid="$2"
    jvm_of "$work"
    if ! "${JVM[@]}" kafka.tools.StorageTool format --standalone \
            -t "$cid" -c "$work/server.properties" >"$work/kafka-format.log" 2>&1; then
        cat "$work/kafka-format.log" >&2
        die "kafka storage format failed"
    fi
}

# Start the broker of <workdir> on <port> (its server.properties and log directory as they are) and wait for it.
launch() {
    local work="$1" bport="$2"
    local pidfile="$work/kafka.pid" envfile="$work/kafka.env"
    local log="$work/kafka-server.log" out="$work/kafka-stdout.log"
    jvm_of "$work"
    setsid "${JVM[@]}" kafka.Kafka "$work/server.properties" </dev/null >"$out" 2>&1 &
    local pid=$!
    echo "$pid" >"$pidfile"

    if ! wait_ready "$bport" "$pid" "$START_TIMEOUT"; then
        echo "---- tail of $log ----" >&2
        tail -n 50 "$log" >&2 2>/dev/null || true
        echo "---- tail of $out ----" >&2
        tail -n 30 "$out" >&2 2>/dev/null || true
        stop "$work" >/dev/null 2>&1 || true
        die "Kafka failed to start"
    fi

    echo "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$bport" >"$envfile"
    echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$bport"
}

# The broker that `stop` ended, again: same ports, same data (what a broker restart after an outage is).
restart() {
    local work="$1"
    [ -f "$work/server.properties" ] && [ -d "$work/kafka-data" ] || die "$work: no broker was started there"
    work="$(cd "$work" && pwd)"
    if [ -f "$work/kafka.pid" ] && is_ours "$(cat "$work/kafka.pid")"; then
        sed -n 's/^export //p' "$work/kafka.env" | tail -n 1
        return 0
    fi
    fetch_jars
    local bport
    bport="$(sed -n 's/^listeners=PLAINTEXT:\/\/127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$work/server.properties")"
    [ -n "$bport" ] || die "$work/server.properties: no PLAINTEXT listener"
    launch "$work" "$bport"
}

stop() {
    local work="$1"
    [ -d "$work" ] || return 0
    local pidfile="$work/kafka.pid" pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if is_ours "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        local _
        for _ in $(seq 1 300); do  # controlled shutdown: up to 30 s
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    rm -f "$pidfile" "$work/kafka.env"
}

[ $# -eq 2 ] || usage
case "$1" in
    start) start "$2" ;;
    stop) stop "$2" ;;
    restart) restart "$2" ;;
    *) usage ;;
esac
