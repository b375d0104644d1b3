#!/usr/bin/env bash
# Checks the echo-service example (Torus in a swift-service-lifecycle ServiceGroup): SIGTERM
# with a connection open begins a graceful shutdown (no new connections, the open one is still
# served until its client leaves), then the process exits 0; SIGINT with nothing open exits 0
# at once; a handler still running when the grace period ends is cancelled and the process
# still exits 0. Loopback only, every wait bounded.
#
#   scripts/check-service.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PATH=$(scripts/bootstrap.sh --print-path)
export PATH

fail() { printf 'check-service: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'check-service: %s\n' "$*"; }

timeout -k 30s 10m swift build -c release --product echo-service
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d "${TMPDIR:-/tmp}/torus-check-service.XXXXXX")
pid=""
cleanup() {
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
    exec 3>&- 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Starts echo-service with the given arguments; sets pid and port.
start() {
    "$bin/echo-service" --port 0 "$@" >"$work/out" 2>&1 &
    pid=$!
    port=""
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/out")
        [[ -n $port ]] && return
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$work/out"
    fail "echo-service did not start"
}

# Waits (at most $1 seconds) for the service to exit; sets status to its exit status.
wait_exit() {
    for _ in $(seq $(($1 * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        cat "$work/out"
        fail "echo-service still running after $1 s"
    fi
    status=0
    wait "$pid" || status=$?
    pid=""
}

echo_line() {  # sends $1 on descriptor 3 and expects it back
    local reply=""
    printf '%s\n' "$1" >&3
    IFS= read -r -t 5 reply <&3 || true
    [[ $reply == "$1" ]] || fail "sent '$1', got '$reply'"
}

# 1. SIGTERM with a connection open: graceful.
start --grace-seconds 30
exec 3<>"/dev/tcp/127.0.0.1/$port"
echo_line "before"
kill -TERM "$pid"
for _ in $(seq 50); do grep -q "shutting down" "$work/out" && break; sleep 0.1; done
grep -q "shutting down" "$work/out" || fail "no graceful shutdown logged after SIGTERM"
echo_line "during the grace period"
if (exec 4<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "a new connection was accepted after SIGTERM"
fi
kill -0 "$pid" 2>/dev/null || fail "echo-service exited while a connection was open"
exec 3>&-
wait_exit 10
[[ $status == 0 ]] || { cat "$work/out"; fail "exit status $status after SIGTERM, not 0"; }
grep -q "echo-service stopped" "$work/out" || fail "no 'stopped' line"
say "SIGTERM with a connection open: served to the end, exit 0"

# 2. SIGINT with nothing open: exits at once.
start
kill -INT "$pid"
wait_exit 5
[[ $status == 0 ]] || { cat "$work/out"; fail "exit status $status after SIGINT, not 0"; }
say "SIGINT: exit 0"

# 3. A connection that outlives the grace period is cut, and the exit is still clean.
start --grace-seconds 1
exec 3<>"/dev/tcp/127.0.0.1/$port"
echo_line "slow client"
kill -TERM "$pid"
wait_exit 10
[[ $status == 0 ]] || { cat "$work/out"; fail "exit status $status after the grace period, not 0"; }
IFS= read -r -t 5 rest <&3 && fail "the connection was not closed: read '$rest'"
exec 3>&-
say "grace period over: handler cancelled, connection closed, exit 0"
say "ok"
