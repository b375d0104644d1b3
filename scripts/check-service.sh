#!/usr/bin/env bash
# Checks graceful shutdown on signals, with real processes:
#
# - echo-service (Torus in a swift-service-lifecycle ServiceGroup): SIGTERM begins a graceful
#   shutdown in which open connections drain: an idle one gets back what it sent last and then
#   end of stream at once, no new connection is accepted while a busy one (a client that sends
#   and never reads) is still served, and the process exits 0 once that one ends. SIGINT with
#   nothing open exits 0 at once. A handler still running when the grace period ends is
#   cancelled and the process still exits 0.
# - every example server (echo-server, http-hello, kv-server, chat-server, tcp-proxy in front
#   of echo-server, udp-echo-server): SIGTERM with an idle connection open (after one request
#   and answer) closes it and exits 0 within 5 s, although the grace period is 30 s: only the
#   drain makes that prompt; SIGINT with nothing open exits 0.
#
# Loopback only, every wait bounded.
#
#   scripts/check-service.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PATH=$(scripts/bootstrap.sh --print-path)
export PATH

fail() { printf 'check-service: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'check-service: %s\n' "$*"; }

servers=(echo-server http-hello kv-server chat-server tcp-proxy udp-echo-server)
for product in echo-service "${servers[@]}"; do
    timeout -k 30s 15m swift build -c release --product "$product"
done
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d "${TMPDIR:-/tmp}/torus-check-service.XXXXXX")
pid=""
upstream_pid=""
flooder=""
cleanup() {
    local p
    for p in "$pid" "$upstream_pid" "$flooder"; do
        [[ -n $p ]] && kill -KILL "$p" 2>/dev/null || true
    done
    exec 3>&- 4>&- 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start NAME [ARGS...]: starts $bin/NAME on a free loopback port; sets pid, port and log (its
# output) once it prints "NAME listening on 127.0.0.1:PORT".
start() {
    local name=$1
    shift
    log=$work/$name.$RANDOM.out
    : >"$log"  # before sed reads it: the background job may not have opened it yet
    "$bin/$name" --host 127.0.0.1 --port 0 "$@" >"$log" 2>&1 &
    pid=$!
    port=""
    for _ in $(seq 100); do
        port=$(sed -n "s/^$name listening on 127\\.0\\.0\\.1:\\([0-9][0-9]*\\).*/\\1/p" "$log")
        [[ -n $port ]] && return
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$log"
    fail "$name did not start"
}

# wait_exit SECONDS WHAT: waits at most SECONDS for the process to exit and expects status 0.
wait_exit() {
    for _ in $(seq $(($1 * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        cat "$log"
        fail "$2: still running after $1 s"
    fi
    local status=0
    wait "$pid" || status=$?
    pid=""
    [[ $status == 0 ]] || { cat "$log"; fail "$2: exit status $status, not 0"; }
}

# expect_reply TEXT: expects the line TEXT (a trailing CR dropped) on descriptor 3 within 5 s.
expect_reply() {
    local reply=""
    IFS= read -r -t 5 reply <&3 || true
    [[ ${reply%$'\r'} == "$1" ]] || fail "expected '$1', got '$reply'"
}

# expect_end WHAT: expects end of stream on descriptor 3 within 5 s (the server closed it),
# with nothing more before it.
expect_end() {
    local rest status=0
    rest=$(timeout 5 cat <&3) || status=$?
    ((status != 124)) || fail "$1: the connection was still open 5 s after the signal"
    [[ -z $rest ]] || fail "$1: got '$rest' before the end of stream"
}

# flood: a client that sends without end and never reads, on descriptor 4: its handler ends
# up waiting to send, and stays busy. Sets flooder. Returns once the server's side of it has
# 256 KiB or more it cannot send (its tx_queue in /proc/net/tcp): before that, the handler
# may still be reading, and a drain could end it when it catches up with the flood.
flood() {
    exec 4<>"/dev/tcp/127.0.0.1/$port"
    cat /dev/zero >&4 2>/dev/null &
    flooder=$!
    for _ in $(seq 100); do
        (($(unsent_on_server) >= 262144)) && return
        sleep 0.1
    done
    fail "the flooding client's handler never got busy sending"
}
# The most bytes queued to send (tx_queue) on an established socket of the server's port.
unsent_on_server() {
    local hex local_address state queues most=0 tx
    hex=$(printf '%04X' "$port")
    while read -r _ local_address _ state queues _; do
        [[ $local_address == *":$hex" && $state == 01 ]] || continue
        tx=$((16#${queues%%:*}))
        ((tx > most)) && most=$tx
    done </proc/net/tcp
    echo "$most"
}
stop_flood() {
    kill -TERM "$flooder" 2>/dev/null || true
    wait "$flooder" 2>/dev/null || true
    flooder=""
    exec 4>&-
}

# =============================================================================================
# 1. echo-service, SIGTERM: the idle connection drains at once, the busy one is served on.
start echo-service --grace-seconds 30
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'before\n' >&3
expect_reply before
flood
printf 'last words\n' >&3  # sent before the signal, not yet read by the server: still echoed
kill -TERM "$pid"
expect_reply "last words"
expect_end "echo-service, idle connection after SIGTERM"
exec 3>&-
for _ in $(seq 50); do grep -q "shutting down" "$log" && break; sleep 0.1; done
grep -q "shutting down" "$log" || fail "no graceful shutdown logged after SIGTERM"
if (exec 5<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "a new connection was accepted after SIGTERM"
fi
kill -0 "$pid" 2>/dev/null || fail "echo-service exited while a busy connection was open"
stop_flood  # the busy client goes away: its handler ends, and so does the service
wait_exit 10 "echo-service after SIGTERM"
grep -q "echo-service stopped" "$log" || fail "no 'stopped' line"
grep -q "grace period over" "$log" && fail "a handler was cancelled, though every connection had ended"
say "echo-service, SIGTERM: the idle connection got its last echo and the end at once, no new connection, the busy one served until it left, exit 0"

# 2. echo-service, SIGINT with nothing open: exits at once.
start echo-service
kill -INT "$pid"
wait_exit 5 "echo-service after SIGINT"
say "echo-service, SIGINT: exit 0"

# 3. A handler that outlives the grace period is cancelled, and the exit is still clean.
start echo-service --grace-seconds 1
flood
kill -TERM "$pid"
wait_exit 10 "echo-service after the grace period"
grep -q "grace period over: cancelling 1 handler(s)" "$log" || { cat "$log"; fail "the busy handler was not cancelled at the grace period's end"; }
stop_flood
say "echo-service, grace period over: the busy handler cancelled, exit 0"

# =============================================================================================
# 4. Every example server, with the default grace period of 30 s: an exit within 5 s means
#    the open connection drained.

# idle_connection NAME: opens descriptor 3 to the server just started and makes one request,
# so that the handler is idle, waiting for the next.
idle_connection() {
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    case $1 in
        echo-server | tcp-proxy) printf 'ping\n' >&3; expect_reply ping ;;
        http-hello) printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&3; expect_reply "HTTP/1.1 200 OK" ;;
        kv-server) printf 'PING\r\n' >&3; expect_reply "+PONG" ;;
        chat-server) expect_reply "* welcome, you are guest1" ;;
    esac
}

for name in "${servers[@]}"; do
    args=()
    if [[ $name == tcp-proxy ]]; then
        start echo-server
        upstream_pid=$pid upstream_port=$port upstream_log=$log
        args=(--upstream "127.0.0.1:$upstream_port")
    fi

    start "$name" "${args[@]}"
    if [[ $name == udp-echo-server ]]; then
        exec 3<>"/dev/udp/127.0.0.1/$port"
        printf 'ping\n' >&3
        # head, not read: bash's read takes a byte per call, and a datagram goes whole.
        reply=$(timeout 5 head -c 5 <&3) || true
        [[ $reply == ping ]] || fail "$name: sent a 'ping' datagram, got '$reply' back"
        kill -TERM "$pid"
        wait_exit 5 "$name after SIGTERM"
        exec 3>&-
        say "$name, SIGTERM after a datagram echoed: exit 0"
    else
        idle_connection "$name"
        kill -TERM "$pid"
        if [[ $name == http-hello ]]; then
            # The rest of the answer to the request, then the end.
            rest=$(timeout 5 cat <&3) || fail "$name: the connection was still open 5 s after SIGTERM"
            [[ $rest == *"Hello, World!" ]] || fail "$name: got '$rest' after the status line"
        else
            expect_end "$name, idle connection after SIGTERM"
        fi
        wait_exit 5 "$name after SIGTERM with an idle connection open"
        exec 3>&-
        say "$name, SIGTERM with an idle connection: closed at once, exit 0"
    fi

    start "$name" "${args[@]}"
    kill -INT "$pid"
    wait_exit 5 "$name after SIGINT"
    say "$name, SIGINT: exit 0"

    if [[ -n $upstream_pid ]]; then
        pid=$upstream_pid log=$upstream_log upstream_pid=""
        kill -INT "$pid"
        wait_exit 5 "echo-server (the proxy's upstream) after SIGINT"
    fi
done
say "ok"
