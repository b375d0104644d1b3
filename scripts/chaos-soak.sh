#!/usr/bin/env bash
# Chaos soak: stresses echo-server, and tcp-proxy in front of an echo-server, with 1,000
# misbehaving client connections over loopback (random message sizes, resets, half-closes,
# slow readers, stalled writers, abandoned connections), checks that every byte comes back in
# order, and that each server's descriptors return to their count before the run and its RSS
# stays flat after warm-up.
#
#   scripts/chaos-soak.sh [--duration S] [--connections N] [--seed N] [--target echo|proxy|both]
#
# Defaults: 60 s per target, 1000 connections, a random seed (printed: pass it back with
# --seed to replay the same connection plans), both targets one after the other (so "both"
# takes about twice the duration, plus the builds). Builds echo-server, tcp-proxy and the
# client (chaos-soak, Tests/ChaosSoak) in release mode, starts each server on a free loopback
# port (port 0; the port is read from its "listening on" line), runs the client against it,
# stops the servers. Every build, server start and client run is bounded with timeout. Exits
# non-zero if any check fails for any target; server logs are then kept.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage="usage: scripts/chaos-soak.sh [--duration S] [--connections N] [--seed N] [--target echo|proxy|both]"
duration=60
connections=1000
seed=""
target=both
while (($#)); do
    [[ $# -ge 2 ]] || { echo "$1 needs a value; $usage" >&2; exit 2; }
    case $1 in
        --duration) duration=$2 ;;
        --connections) connections=$2 ;;
        --seed) seed=$2 ;;
        --target) target=$2 ;;
        *) echo "unknown option $1; $usage" >&2; exit 2 ;;
    esac
    shift 2
done
[[ $duration =~ ^[0-9]+$ && $duration -gt 0 ]] || { echo "--duration must be a positive whole number of seconds" >&2; exit 2; }
[[ $connections =~ ^[0-9]+$ && $connections -gt 0 ]] || { echo "--connections must be a positive number" >&2; exit 2; }
[[ -z $seed || $seed =~ ^[0-9]+$ ]] || { echo "--seed must be a number" >&2; exit 2; }
case $target in echo | proxy | both) ;; *) echo "--target must be echo, proxy or both; $usage" >&2; exit 2 ;; esac
# One seed for every target, so a failure anywhere can be replayed.
[[ -n $seed ]] || seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')

PATH=$(scripts/bootstrap.sh --print-path)
export PATH

started=$SECONDS
section() { printf '\n--- chaos-soak: %s (at %ds)\n' "$*" $((SECONDS - started)); }
fail() { printf 'chaos-soak: FAILED: %s\n' "$*" >&2; exit 1; }

# Descriptors: the client holds one per connection, tcp-proxy two (plus its accept queue of
# 256 and sockets still closing), the echo server behind it one. Raise the soft limit to the
# hard limit (which this shell may do without privileges) and check it is enough for the proxy.
section "descriptor limit"
hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=$(cat /proc/sys/fs/nr_open)
needed=$((3 * connections + 512))
((hard >= needed)) || fail "$connections connections need about $needed descriptors per process, but the hard limit (ulimit -Hn) is $hard: raise it or pass fewer --connections"
ulimit -Sn "$hard"
echo "ulimit -n: $(ulimit -Sn) (hard $hard; about $needed needed)"

section "building echo-server, tcp-proxy and chaos-soak (release)"
for product in echo-server tcp-proxy chaos-soak; do
    timeout -k 10s 15m swift build -c release --product "$product"
done
bin=$(swift build -c release --show-bin-path)

work=$(mktemp -d "${TMPDIR:-/tmp}/torus-chaos-soak.XXXXXX")
pids=()
status=0
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local exit_status=$? pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if ((exit_status == 0)); then rm -rf "$work"; else echo "chaos-soak: server logs kept in $work" >&2; fi
}
trap cleanup EXIT

# start_server NAME [ARGS...]: starts $bin/NAME on a free loopback port; sets `port` and
# `pid` once it prints "NAME listening on 127.0.0.1:PORT".
start_server() {
    local name=$1 log=$work/$1.$RANDOM.log
    shift
    "$bin/$name" --host 127.0.0.1 --port 0 "$@" >"$log" 2>&1 &
    pid=$!
    pids+=("$pid")
    port=""
    for _ in $(seq 300); do
        port=$(sed -n "s/^$name listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p" "$log")
        [[ -n $port ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n $port ]] || { cat "$log" >&2; fail "$name did not start"; }
    echo "$name (pid $pid) listening on 127.0.0.1:$port"
}

# stop_servers PID...: each must still be running (a crash is a failure); stops it.
stop_servers() {
    local pid ok=0
    for pid in "$@"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "chaos-soak: server pid $pid is no longer running" >&2
            ok=1
        fi
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    return $ok
}

# soak LABEL PORT NAME=PID...: runs the client against 127.0.0.1:PORT watching the servers.
# The bound covers the load, the client's drain (30 s) and settle (10 s) limits, and slack.
soak() {
    local label=$1 port=$2
    shift 2
    local watch=() server
    for server in "$@"; do watch+=(--server "$server"); done
    timeout -k 10s $((duration + 120))s "$bin/chaos-soak" --connect "127.0.0.1:$port" --label "$label" \
        --duration "$duration" --connections "$connections" --seed "$seed" "${watch[@]}"
}

results=()
if [[ $target == echo || $target == both ]]; then
    section "echo-server: $connections connections for ${duration}s, seed $seed"
    start_server echo-server
    echo_pid=$pid
    result=PASS
    soak echo "$port" "echo-server=$echo_pid" || result=FAIL
    stop_servers "$echo_pid" || result=FAIL
    [[ $result == PASS ]] || status=1
    results+=("echo: $result")
fi

if [[ $target == proxy || $target == both ]]; then
    section "tcp-proxy in front of echo-server: $connections connections for ${duration}s, seed $seed"
    start_server echo-server
    upstream_pid=$pid
    upstream_port=$port
    start_server tcp-proxy --upstream "127.0.0.1:$upstream_port"
    proxy_pid=$pid
    result=PASS
    soak proxy "$port" "tcp-proxy=$proxy_pid" "echo-server=$upstream_pid" || result=FAIL
    stop_servers "$proxy_pid" "$upstream_pid" || result=FAIL
    [[ $result == PASS ]] || status=1
    results+=("proxy: $result")
fi

section "done in $((SECONDS - started))s: ${results[*]} (seed $seed; replay: scripts/chaos-soak.sh --target $target --duration $duration --connections $connections --seed $seed)"
exit $status
