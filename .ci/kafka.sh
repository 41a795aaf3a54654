#!/usr/bin/env bash
# Start/stop a real single-node Apache Kafka broker (KRaft, no ZooKeeper) on
# loopback for CI, without Docker and without the Kafka binary tarball: the
# broker jars come from Maven Central through mvn (.ci/kafka/pom.xml).
#
#   bash .ci/kafka.sh start <workdir>   # prints KAFKA_BOOTSTRAP_SERVERS=... last
#   bash .ci/kafka.sh start-sasl-ssl <workdir>
#   bash .ci/kafka.sh stop  <workdir>
#   bash .ci/kafka.sh restart <workdir> # after stop: the same broker again, same
#                                       # ports, its data kept (outage tests; plain)
#
# `start-sasl-ssl` starts a broker whose client listener is SASL_SSL with
# SCRAM-SHA-512 and a required client certificate, the ways managed services
# (MSK, Confluent Cloud, Aiven) are reached: a CA, a broker and a client
# certificate are made by .ci/tls.sh under <workdir>/tls, the SCRAM user `ppa`
# gets a random password (written to <workdir>/kafka-password, mode 600) at
# storage format time. The controller and inter-broker listeners stay
# PLAINTEXT on loopback. <workdir>/kafka.env then exports what a client needs
# (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_* file paths).
# KAFKA_HEAP_OPTS may be smaller for it when it runs beside the plain one.
#
# Jars are cached in ~/.cache/ppa-ci/kafka-<version>/libs; a second run does
# no downloads (mvn is not even started). Each `start` formats a fresh, empty
# log directory under <workdir>.
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

usage() { die "usage: $0 start|start-sasl-ssl|stop|restart <workdir>"; }

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
# Prints three distinct free loopback ports: "<broker> <controller> <sasl_ssl>".
free_ports() {
    python3 - <<'PY'
import socket
socks = []
for _ in range(3):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# Kafka's Uuid.toString(): url-safe base64 of 16 random bytes, no padding; drawn again when it starts with "-"
# (as Kafka's Uuid.randomUuid does): `kafka-storage format --cluster-id -…` would read it as an option (1 in 64).
cluster_id() {
    python3 -c '
import base64, uuid
cid = "-"
while cid.startswith("-"):
    cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
print(cid)'
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
# start <workdir> plain|sasl_ssl
start() {
    local work="$1" mode="$2"
    mkdir -p "$work"
    work="$(cd "$work" && pwd)"
    local pidfile="$work/kafka.pid" envfile="$work/kafka.env"
    local log="$work/kafka-server.log" out="$work/kafka-stdout.log"

    if [ -f "$pidfile" ] && is_ours "$(cat "$pidfile")" && [ -f "$envfile" ]; then
        # Already running: idempotent.
        sed -n 's/^export //p' "$envfile"
        return 0
    fi
    rm -f "$pidfile" "$envfile"

    fetch_jars

    local bport cport sport cid data
    read -r bport cport sport <<<"$(free_ports)"
    cid="$(cluster_id)"
    data="$work/kafka-data"
    rm -rf "$data"
    rm -f "$log" "$out"
    mkdir -p "$data"

    local listeners="PLAINTEXT://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport"
    local advertised="PLAINTEXT://127.0.0.1:$bport"
    local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    local scram=()
    if [ "$mode" = sasl_ssl ]; then
        bash "$HERE/tls.sh" "$work/tls" || die "could not make the CI certificates"
        local password
        password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
        (umask 077 && printf '%s' "$password" >"$work/kafka-password")
        listeners="$listeners,SASL_SSL://127.0.0.1:$sport"
        advertised="$advertised,SASL_SSL://127.0.0.1:$sport"
        protocols="$protocols,SASL_SSL:SASL_SSL"
        # the SCRAM credential lives in the cluster metadata from the first start on
        scram=(--add-scram "SCRAM-SHA-512=[name=ppa,password=$password]")
    fi

    cat >"$work/server.properties" <<EOF
# Generated by .ci/kafka.sh - single-node KRaft broker+controller for CI.
process.roles=broker,controller
node.id=1
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=$protocols
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
    if [ "$mode" = sasl_ssl ]; then
        cat >>"$work/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$work/tls/server.pem
listener.name.sasl_ssl.ssl.client.auth=required
listener.name.sasl_ssl.ssl.truststore.type=PEM
listener.name.sasl_ssl.ssl.truststore.location=$work/tls/ca.pem
EOF
    fi

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

    # shellcheck disable=SC2206 # word splitting of the *_OPTS is intended
    local jvm=(java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS
        -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$work/kafka-log4j2.properties"
        -Dkafka.logs.dir="$work"
        -cp "$LIBS/*")

    if ! "${jvm[@]}" kafka.tools.StorageTool format --standalone "${scram[@]}" \
            -t "$cid" -c "$work/server.properties" >"$work/kafka-format.log" 2>&1; then
        cat "$work/kafka-format.log" >&2
        die "kafka storage format failed"
    fi

    setsid "${jvm[@]}" kafka.Kafka "$work/server.properties" </dev/null >"$out" 2>&1 &
    local pid=$!
    echo "$pid" >"$pidfile"

    # Readiness is asked on the PLAINTEXT listener; a SASL_SSL one opens with it.
    if ! wait_ready "$bport" "$pid" "$START_TIMEOUT"; then
        echo "---- tail of $log ----" >&2
        tail -n 50 "$log" >&2 2>/dev/null || true
        echo "---- tail of $out ----" >&2
        tail -n 30 "$out" >&2 2>/dev/null || true
        stop "$work" >/dev/null 2>&1 || true
        die "Kafka failed to start"
    fi

    if [ "$mode" = sasl_ssl ]; then
        cat >"$envfile" <<EOF
export KAFKA_SECURITY_PROTOCOL=SASL_SSL
export KAFKA_SASL_MECHANISM=SCRAM-SHA-512
export KAFKA_SASL_USERNAME=ppa
export KAFKA_SASL_PASSWORD_FILE=$work/kafka-password
export KAFKA_SSL_CAFILE=$work/tls/ca.pem
export KAFKA_SSL_CERTFILE=$work/tls/client.crt
export KAFKA_SSL_KEYFILE=$work/tls/client.key
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$sport
EOF
    else
        echo "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$bport" >"$envfile"
    fi
    sed -n 's/^export //p' "$envfile"
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
    rm -f "$pidfile" "$work/kafka.env" "$work/kafka-password"
}

# The broker that `stop` ended, again: same ports, same data (what a broker restart after an outage is).
restart() {
    local work="$1"
    [ -f "$work/server.properties" ] && [ -d "$work/kafka-data" ] || die "$work: no broker was started there"
    work="$(cd "$work" && pwd)"
    local pidfile="$work/kafka.pid" envfile="$work/kafka.env"
    local log="$work/kafka-server.log" out="$work/kafka-stdout.log"
    if [ -f "$pidfile" ] && is_ours "$(cat "$pidfile")"; then
        sed -n 's/^export //p' "$envfile" | tail -n 1
        return 0
    fi
    grep -q '^listeners=PLAINTEXT://[^,]*,CONTROLLER' "$work/server.properties" || die "restart serves a plain broker only"
    fetch_jars
    local bport
    bport="$(sed -n 's/^listeners=PLAINTEXT:\/\/127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$work/server.properties")"
    [ -n "$bport" ] || die "$work/server.properties: no PLAINTEXT listener"
    # shellcheck disable=SC2206 # word splitting of the *_OPTS is intended
    local jvm=(java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS
        -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$work/kafka-log4j2.properties"
        -Dkafka.logs.dir="$work"
        -cp "$LIBS/*")
    setsid "${jvm[@]}" kafka.Kafka "$work/server.properties" </dev/null >"$out" 2>&1 &
    local pid=$!
    echo "$pid" >"$pidfile"
    if ! wait_ready "$bport" "$pid" "$START_TIMEOUT"; then
        tail -n 50 "$log" >&2 2>/dev/null || true
        die "Kafka failed to start again"
    fi
    echo "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$bport" >"$envfile"
    echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$bport"
}

[ $# -eq 2 ] || usage
case "$1" in
    start) start "$2" plain ;;
    start-sasl-ssl) start "$2" sasl_ssl ;;
    stop) stop "$2" ;;
    restart) restart "$2" ;;
    *) usage ;;
esac
