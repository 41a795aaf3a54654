#!/usr/bin/env bash
# Make throw-away TLS material for the CI servers with Debian's openssl:
#
#   bash .ci/tls.sh <dir>
#
# <dir>/ca.pem                     a CA both sides trust (its key is deleted at once)
# <dir>/server.crt, server.key     for 127.0.0.1 and localhost, signed by that CA
# <dir>/server.pem                 unencrypted PKCS#8 key + certificate in one file (Kafka's PEM keystore)
# <dir>/client.crt, client.key     a client certificate (CN=ppa) for mutual TLS
#
# Valid two days; every run replaces what <dir> held.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 <dir>" >&2; exit 1; }
command -v openssl >/dev/null 2>&1 || { echo "tls.sh: openssl not found in PATH" >&2; exit 1; }
dir="$1"
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
if ! (
    set -e
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ppa-ci-ca" -keyout ca.key -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.rsa -out server.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext \
        -out server.crt
    openssl pkcs8 -topk8 -nocrypt -in server.rsa -out server.key
    cat server.key server.crt >server.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=ppa" -keyout client.key -out client.csr
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext \
        -out client.crt
    rm -f ca.key ca.srl server.rsa server.csr server.ext client.csr client.ext
    chmod 600 server.key server.pem client.key
) >openssl.log 2>&1; then
    cat openssl.log >&2
    echo "tls.sh: openssl could not make the CI certificates" >&2
    exit 1
fi
