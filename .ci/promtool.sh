#!/usr/bin/env bash
# Prometheus's promtool for the alert rule tests (tests/deploy/test_alert_rules.py): built once with the go
# tool from the Go module proxy and cached; later runs only print its path.
#
#   bash .ci/promtool.sh      # prints the path of the promtool binary (export it as PPA_PROMTOOL)
#
# Environment overrides:
#   PROMETHEUS_VERSION  the module version of github.com/prometheus/prometheus (default v0.316.0, the newest
#                       release on the proxy: Prometheus 3.16.0; the module numbers 3.x releases v0.3xx.y)
#   PPA_CI_CACHE        (default ~/.cache/ppa-ci); the binary lands in <cache>/bin/promtool-<version>
set -euo pipefail

PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
CACHE_ROOT="${PPA_CI_CACHE:-$HOME/.cache/ppa-ci}"
BIN="$CACHE_ROOT/bin/promtool-$PROMETHEUS_VERSION"

die() { echo "promtool.sh: $*" >&2; exit 1; }

if [ ! -x "$BIN" ]; then
    command -v go >/dev/null 2>&1 || die "go not found in PATH"
    root="$CACHE_ROOT/promtool-$PROMETHEUS_VERSION"
    mkdir -p "$root" "$CACHE_ROOT/bin"
    # concurrent first runs build once (the lock is released on exit too)
    exec 9>"$root/.lock"
    flock 9
    if [ ! -x "$BIN" ]; then
        log="$root/build.log"
        tmp="$root/gobin.$$"
        rm -rf "$tmp"
        # a module and build cache of its own (~1 GB while building), removed once the binary is there
        if ! env GOPATH="$root/go" GOMODCACHE="$root/go/pkg/mod" GOCACHE="$root/go/cache" GOFLAGS=-modcacherw \
                GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$tmp" \
                go install "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" >"$log" 2>&1 \
           || ! "$tmp/promtool" --version >>"$log" 2>&1; then
            tail -n 40 "$log" >&2 || true
            rm -rf "$tmp"
            die "build of promtool $PROMETHEUS_VERSION failed (log: $log)"
        fi
        mv -f "$tmp/promtool" "$BIN"
        rm -rf "$tmp" "$root/go"
    fi
    exec 9>&-
fi
echo "$BIN"
