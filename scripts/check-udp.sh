#!/usr/bin/env bash
# UDP smoke check: starts the release udp-echo-server on a free loopback port, checks that a
# datagram sent with socat comes back, that udp-client round-trips lines and passes a short
# load check, then stops the server. Builds the two examples in release first when they are
# missing. Every step is bounded in time; exits non-zero on the first failure.
#
#   scripts/check-udp.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PATH=$(scripts/bootstrap.sh --print-path socat)
export PATH

say() { printf 'check-udp: %s\n' "$*"; }
fail() { printf 'check-udp: FAILED: %s\n' "$*" >&2; exit 1; }

bin=$(swift build -c release --show-bin-path)
for product in udp-echo-server udp-client; do
    if [[ ! -x $bin/$product ]]; then
        timeout -k 30s 10m swift build -c release --product "$product"
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/torus-check-udp.XXXXXX")
server_pid=""
stop_server() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    [[ -n $server_pid ]] && wait "$server_pid" 2>/dev/null || true
    server_pid=""
}
trap 'stop_server; rm -rf "$work"' EXIT

# Port 0: the server prints the port it got (and flushes), the check reads it from there.
timeout -k 5s 5m "$bin/udp-echo-server" --host 127.0.0.1 --port 0 >"$work/server.out" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 100); do
    port=$(sed -n 's/^udp-echo-server listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$work/server.out")
    [[ -n $port ]] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
cat "$work/server.out"
[[ -n $port ]] || fail "udp-echo-server did not start"

# socat sends its input as one datagram and prints what comes back until -t expires.
reply=$(printf 'hello over udp' | timeout 10 socat -t 2 - "UDP:127.0.0.1:$port") || fail "socat could not talk to udp-echo-server"
[[ $reply == "hello over udp" ]] || fail "socat got '$reply' back instead of 'hello over udp'"
say "socat: hello over udp -> $reply"

reply=$(printf 'first line\nsecond line\n' | timeout 20 "$bin/udp-client" --host 127.0.0.1 --port "$port") \
    || fail "udp-client failed"
[[ $reply == $'first line\nsecond line' ]] || fail "udp-client printed '$reply'"
say "udp-client: two lines echoed"

timeout 60 "$bin/udp-client" --host 127.0.0.1 --port "$port" --count 20000 --size 512 || fail "udp-client load check failed"

stop_server
say "server stopped; all UDP checks passed"
