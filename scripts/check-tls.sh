#!/usr/bin/env bash
# Drives the example servers over TLS with real, independent clients: curl (with and without
# the CA), openssl s_client (TLS 1.2 and 1.3, ALPN, SNI picking the certificate, session resumption, a client
# certificate, a renegotiation attempt), wrk and h2load over https, Python's ssl module, socat
# and echo-client against echo-server, redis-cli --tls against kv-server.
#
#   scripts/check-tls.sh
#
# Builds the examples in release mode, installs the clients when missing, makes throwaway
# certificates (scripts/make-test-certs.sh) in a temporary directory, starts each server on a
# free loopback port and checks what every client gets. Loopback only; every client and wait is
# bounded with timeout, every server is stopped at the end. Exits non-zero on the first failed
# check. The engine is TORUS_ENGINE's, as for every check script.
# shellcheck disable=SC2317  # called by the EXIT trap
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PATH=$(scripts/bootstrap.sh --print-path curl wrk nghttp2-client redis-tools socat python3)
export PATH

started=$SECONDS
section() { printf '\n--- check-tls: %s (at %ds)\n' "$*" $((SECONDS - started)); }
fail() { printf 'check-tls: FAILED: %s\n' "$*" >&2; exit 1; }
ok() { printf 'ok: %s\n' "$*"; }

section "building the examples (release)"
for product in http-hello echo-server kv-server echo-client; do
    timeout -k 10s 15m swift build -c release --product "$product"
done
bin=$(swift build -c release --show-bin-path)

work=$(mktemp -d "${TMPDIR:-/tmp}/torus-check-tls.XXXXXX")
pids=()
cleanup() {
    local status=$? pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if ((status == 0)); then rm -rf "$work"; else echo "check-tls: logs kept in $work" >&2; fi
}
trap cleanup EXIT

scripts/make-test-certs.sh "$work/certs" >/dev/null
certs=$work/certs
tls_args=(--tls-cert "$certs/server.pem" --tls-key "$certs/server.key")

# start_server NAME [ARGS...]: starts $bin/NAME on a free port; sets `port` once it prints
# "NAME listening on 127.0.0.1:PORT", and `server_log` to its log.
start_server() {
    local name=$1 log=$work/$1.$RANDOM.log
    shift
    : >"$log"  # before sed reads it: the background job may not have opened it yet
    server_log=$log
    "$bin/$name" --host 127.0.0.1 --port 0 "$@" >"$log" 2>&1 &
    pids+=($!)
    port=""
    for _ in $(seq 300); do
        port=$(sed -n "s/^$name listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p" "$log")
        [[ -n $port ]] && break
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n $port ]] || { cat "$log" >&2; fail "$name did not start"; }
    echo "$name listening on 127.0.0.1:$port (TLS)"
}

# s_client ARGS...: openssl s_client against $port with the request on standard input; keeps
# reading after the input ends (-ign_eof) until the server closes.
s_client() {
    timeout 10 openssl s_client -connect "127.0.0.1:$port" -ign_eof "$@" 2>&1
}
request=$'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'

# =============================================================================================
section "http-hello over TLS: curl"
start_server http-hello "${tls_args[@]}"
https_port=$port

body=$(timeout 10 curl -sS --cacert "$certs/ca.pem" "https://localhost:$https_port/") || fail "curl --cacert failed"
[[ $body == "Hello, World!" ]] || fail "curl got '$body'"
ok "curl --cacert: Hello, World!"

status=0
timeout 10 curl -sS "https://localhost:$https_port/" >/dev/null 2>"$work/curl.err" || status=$?
((status == 60)) || fail "curl without the CA exited $status, not 60 (certificate verification): $(cat "$work/curl.err")"
ok "curl without the CA: refused, exit 60 ($(head -n 1 "$work/curl.err"))"

verbose=$(timeout 10 curl -sSv --cacert "$certs/ca.pem" "https://localhost:$https_port/" 2>&1 >/dev/null)
grep -q 'ALPN: server accepted http/1.1' <<<"$verbose" || fail "curl: ALPN http/1.1 not accepted: $verbose"
ok "curl: ALPN http/1.1 accepted"

section "http-hello over TLS: openssl s_client"
for version in tls1_2 tls1_3; do
    out=$(s_client -tls${version#tls} -servername localhost -CAfile "$certs/ca.pem" -verify_return_error -alpn http/1.1 <<<"$request") \
        || fail "s_client -$version failed: $out"
    expected="TLSv1.${version#tls1_}"
    grep -q "Protocol *: $expected" <<<"$out" || grep -q "^New, $expected" <<<"$out" || fail "s_client -$version did not speak $expected: $out"
    grep -q 'Verify return code: 0 (ok)' <<<"$out" || fail "s_client -$version: verification failed: $out"
    grep -q 'ALPN protocol: http/1.1' <<<"$out" || fail "s_client -$version: no ALPN: $out"
    grep -q 'HTTP/1.1 200 OK' <<<"$out" || fail "s_client -$version: no 200: $out"
    ok "s_client -$version: $expected, verified, ALPN http/1.1, 200 OK"
done

# Resumption: the first connection saves its session (TLS 1.3: a ticket), the second offers it.
s_client -tls1_3 -servername localhost -CAfile "$certs/ca.pem" -sess_out "$work/session.pem" <<<"$request" >"$work/first.out" \
    || fail "s_client -sess_out failed: $(cat "$work/first.out")"
[[ -s $work/session.pem ]] || fail "s_client saved no session: $(cat "$work/first.out")"
out=$(s_client -tls1_3 -servername localhost -CAfile "$certs/ca.pem" -sess_in "$work/session.pem" <<<"$request") \
    || fail "s_client -sess_in failed: $out"
grep -q '^Reused, TLSv1.3' <<<"$out" || fail "the session was not resumed: $(grep -E '^(New|Reused)' <<<"$out")"
ok "s_client -sess_out/-sess_in: session resumed (Reused, TLSv1.3)"

# A client offering only a protocol the server lacks gets no_application_protocol.
out=$(s_client -servername localhost -CAfile "$certs/ca.pem" -alpn h2 <<<"$request" || true)
grep -qi 'no application protocol' <<<"$out" || fail "ALPN h2 only: expected a no_application_protocol alert: $out"
ok "s_client -alpn h2 (unsupported): no_application_protocol alert"

# A renegotiation request (TLS 1.2: "R" on a line of its own, which s_client takes as a
# command only without -ign_eof) is refused with a no_renegotiation alert, and the server
# serves on. Standard input stays open a second so that s_client sees the answer.
out=$( (printf 'R\n'; sleep 1) | timeout 10 openssl s_client -connect "127.0.0.1:$port" -tls1_2 -servername localhost \
        -CAfile "$certs/ca.pem" 2>&1 || true)
grep -q 'RENEGOTIATING' <<<"$out" || fail "s_client did not try to renegotiate: $out"
grep -q 'no renegotiation' <<<"$out" || fail "the renegotiation was not refused: $(tail -n 5 <<<"$out")"
body=$(timeout 10 curl -sS --cacert "$certs/ca.pem" "https://localhost:$https_port/") || fail "curl after the renegotiation attempt failed"
[[ $body == "Hello, World!" ]] || fail "after renegotiation: curl got '$body'"
ok "renegotiation attempt refused (no_renegotiation alert); the server serves on"

section "http-hello over TLS: Python's ssl (verification on)"
python3 - "$https_port" "$certs/ca.pem" <<'PYTHON' || fail "Python's ssl client failed"
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
context = ssl.create_default_context(cafile=ca)
with socket.create_connection(("localhost", port), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := tls.recv(4096):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"Hello, World!"), data
        print(f"ok: python ssl: {tls.version()}, {tls.cipher()[0]}, 200 OK")
try:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        context.wrap_socket(raw, server_hostname="wrong.example")
    sys.exit("python: a wrong host name was accepted")
except ssl.SSLCertVerificationError as error:
    print(f"ok: python ssl, wrong host name refused: {error.verify_message}")
PYTHON

section "http-hello over TLS: wrk and h2load --h1"
timeout 30 wrk -t1 -c16 -d3s "https://localhost:$https_port/" | tee "$work/wrk.out"
grep -q 'Socket errors' "$work/wrk.out" && fail "wrk over TLS saw socket errors"
grep -q 'Non-2xx' "$work/wrk.out" && fail "wrk over TLS saw non-2xx answers"
ok "wrk over https: $(grep -o 'Requests/sec: *[0-9.]*' "$work/wrk.out")"
timeout 60 h2load --h1 -n 20000 -c 16 "https://127.0.0.1:$https_port/" | tee "$work/h2load.out"
grep -q 'requests: 20000 total, 20000 started, 20000 done, 20000 succeeded' "$work/h2load.out" || fail "h2load over TLS: not every request succeeded"
ok "h2load --h1 over TLS: 20000 requests succeeded"

section "http-hello with a second certificate by server name (SNI): openssl s_client, curl"
start_server http-hello "${tls_args[@]}" --tls-sni "*.other.test=$certs/other.pem:$certs/other.key,other.test=$certs/other.pem:$certs/other.key"
# subject NAME [s_client options]: the subject of the certificate the server presents.
subject() { s_client -CAfile "$certs/ca.pem" -verify_return_error "$@" <<<"$request" | sed -n 's/^subject=//p' | head -n 1; }
for name in api.other.test other.test; do
    got=$(subject -servername "$name")
    [[ $got == *"CN = other.test"* ]] || fail "SNI $name: the server presented '$got', not other.test's certificate"
    ok "s_client -servername $name: $got"
done
got=$(subject -servername localhost)
[[ $got == *"CN = localhost"* ]] || fail "SNI localhost: the server presented '$got', not the default certificate"
ok "s_client -servername localhost: $got (the default)"
got=$(subject -noservername)
[[ $got == *"CN = localhost"* ]] || fail "no SNI: the server presented '$got', not the default certificate"
ok "s_client -noservername: $got (the default)"
body=$(timeout 10 curl -sS --cacert "$certs/ca.pem" --resolve "api.other.test:$port:127.0.0.1" "https://api.other.test:$port/") \
    || fail "curl https://api.other.test (SNI, verified against other.test's certificate) failed"
[[ $body == "Hello, World!" ]] || fail "curl https://api.other.test got '$body'"
ok "curl https://api.other.test (verified by name): Hello, World!"

section "http-hello with client certificates required (mutual TLS)"
start_server http-hello "${tls_args[@]}" --tls-client-ca "$certs/ca.pem"
out=$(s_client -servername localhost -CAfile "$certs/ca.pem" -cert "$certs/client.pem" -key "$certs/client.key" <<<"$request") \
    || fail "s_client with a client certificate failed: $out"
grep -q 'HTTP/1.1 200 OK' <<<"$out" || fail "s_client with a client certificate: no 200: $out"
ok "s_client -cert client.pem: 200 OK"
status=0
timeout 10 curl -sS --cacert "$certs/ca.pem" "https://localhost:$port/" >/dev/null 2>"$work/curl.err" || status=$?
((status != 0)) || fail "curl without a client certificate was served"
ok "curl without a client certificate: refused (exit $status: $(head -n 1 "$work/curl.err"))"
body=$(timeout 10 curl -sS --cacert "$certs/ca.pem" --cert "$certs/client.pem" --key "$certs/client.key" "https://localhost:$port/") \
    || fail "curl with a client certificate failed"
[[ $body == "Hello, World!" ]] || fail "curl with a client certificate got '$body'"
ok "curl --cert client.pem: Hello, World!"

# =============================================================================================
section "echo-server over TLS: socat and echo-client"
start_server echo-server "${tls_args[@]}"
head -c $((1024 * 1024)) /dev/urandom >"$work/payload"
timeout 30 socat -t 5 - "OPENSSL:127.0.0.1:$port,cafile=$certs/ca.pem,commonname=localhost" <"$work/payload" >"$work/socat.out" \
    || fail "socat OPENSSL: failed"
cmp -s "$work/payload" "$work/socat.out" || fail "socat OPENSSL: got different bytes back for 1 MiB"
ok "socat OPENSSL: 1 MiB echoed intact"
timeout 30 "$bin/echo-client" --port "$port" --tls --ca "$certs/ca.pem" --server-name localhost <"$work/payload" >"$work/client.out" \
    || fail "echo-client --tls failed"
cmp -s "$work/payload" "$work/client.out" || fail "echo-client --tls: got different bytes back for 1 MiB"
ok "echo-client --tls: 1 MiB echoed intact"
status=0
out=$(timeout 10 "$bin/echo-client" --port "$port" --tls </dev/null 2>&1) || status=$?
((status == 1)) && grep -q 'untrusted certificate' <<<"$out" || fail "echo-client --tls without --ca: expected an untrusted-certificate error, got ($status) $out"
ok "echo-client --tls without --ca: $out"

section "echo-client --tls against openssl s_server"
openssl s_server -accept 0 -naccept 1 -cert "$certs/server.pem" -key "$certs/server.key" -rev >"$work/s_server.out" 2>&1 &
pids+=($!)
s_port=""
for _ in $(seq 100); do
    s_port=$(sed -n 's/^ACCEPT .*:\([0-9][0-9]*\)$/\1/p' "$work/s_server.out")
    [[ -n $s_port ]] && break
    sleep 0.1
done
[[ -n $s_port ]] || fail "openssl s_server did not start: $(cat "$work/s_server.out")"
# -rev answers each line reversed.
reply=$(printf 'hello\n' | timeout 10 "$bin/echo-client" --port "$s_port" --tls --ca "$certs/ca.pem" --server-name localhost | head -n 1) || true
[[ $reply == olleh ]] || fail "echo-client against s_server -rev got '$reply'"
ok "echo-client --tls against s_server -rev: hello -> $reply"

# =============================================================================================
section "kv-server over TLS: redis-cli --tls"
start_server kv-server "${tls_args[@]}"
redis() { timeout 10 redis-cli --tls --cacert "$certs/ca.pem" --sni localhost -h 127.0.0.1 -p "$port" "$@"; }
[[ $(redis SET greeting hello) == OK ]] || fail "redis-cli --tls SET"
[[ $(redis GET greeting) == hello ]] || fail "redis-cli --tls GET"
[[ $(redis INCR counter) == 1 ]] || fail "redis-cli --tls INCR"
ok "redis-cli --tls: SET, GET, INCR"
status=0
timeout 10 redis-cli --tls -h 127.0.0.1 -p "$port" PING >"$work/redis.err" 2>&1 || status=$?
grep -qi 'certificate\|SSL\|verify' "$work/redis.err" || fail "redis-cli --tls without the CA: expected a verification error, got: $(cat "$work/redis.err")"
ok "redis-cli --tls without the CA: refused"

section "all TLS checks passed in $((SECONDS - started)) s"
