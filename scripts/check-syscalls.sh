#!/usr/bin/env bash
# Checks that the echo server moves socket data only through io_uring.
#
# Builds echo-server in release mode, runs it under strace on a free loopback port, drives a
# few hundred KB of traffic through it with socat and nc clients, stops it, and then reads the
# trace: io_uring_enter must have been called, and no read/write/recv*/send*/poll/select/
# epoll/accept/connect call may have been made on a socket. (Other descriptors are fine: the
# Swift runtime reads its libraries and /proc, the loops use eventfds, the server writes to
# stdout.) Creating and setting up sockets (socket, setsockopt, bind, listen) is done directly
# and is not checked. Sockets are recognised by strace's -y annotation (`9<socket:[1234]>`).
#
#   scripts/check-syscalls.sh            exits non-zero and prints the offending calls if any
#   KEEP_TRACE=1 scripts/check-syscalls.sh   keeps the trace directory even on success
#
# Loopback only; stops by itself (every client and wait is bounded).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PATH=$(scripts/bootstrap.sh --print-path strace socat netcat-openbsd)
export PATH

section() { printf '\n--- check-syscalls: %s\n' "$*"; }
fail() { printf 'check-syscalls: FAILED: %s\n' "$*" >&2; exit 1; }

section "building echo-server (release)"
swift build -c release --product echo-server
server="$(swift build -c release --show-bin-path)/echo-server"

work=$(mktemp -d "${TMPDIR:-/tmp}/torus-check-syscalls.XXXXXX")
trace=$work/strace.log
output=$work/server.out
strace_pid=""
server_pid=""

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local status=$?
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    if [[ -n $strace_pid ]] && kill -0 "$strace_pid" 2>/dev/null; then
        kill -KILL "$strace_pid" 2>/dev/null || true
    fi
    if ((status == 0)) && [[ -z ${KEEP_TRACE-} ]]; then
        rm -rf "$work"
    else
        echo "check-syscalls: trace and server output kept in $work" >&2
    fi
}
trap cleanup EXIT

# The direct child of $1 (found through /proc, which every Linux has; no procps needed).
child_of() {
    local file stat rest
    for file in /proc/[0-9]*/stat; do
        stat=$(<"$file") 2>/dev/null || continue
        rest=${stat##*) }            # after "pid (comm) ", which may contain spaces
        rest=${rest#* }              # drop the state
        if [[ ${rest%% *} == "$1" ]]; then
            echo "${stat%% *}"
            return 0
        fi
    done
    return 1
}

section "starting echo-server under strace"
syscalls=read,write,readv,writev,recvfrom,sendto,recvmsg,sendmsg,recvmmsg,sendmmsg
syscalls+=,epoll_wait,epoll_pwait,epoll_pwait2,epoll_ctl,poll,ppoll,select,pselect6
syscalls+=,accept,accept4,connect,socket,io_uring_enter
# Port 0: the kernel picks a free port and the server prints it. stdbuf makes its standard
# output line-buffered, so that the line arrives while it runs.
strace -f -qq -y -e trace="$syscalls" -o "$trace" \
    stdbuf -oL "$server" --host 127.0.0.1 --port 0 --threads 2 >"$output" 2>&1 &
strace_pid=$!

port=""
for _ in $(seq 200); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$output")
    [[ -n $port ]] && break
    kill -0 "$strace_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $port ]]; then
    cat "$output" >&2
    fail "the server did not start under strace (is ptrace allowed here?)"
fi
server_pid=$(child_of "$strace_pid") || fail "cannot find the server process under strace"
echo "echo-server (pid $server_pid) listening on 127.0.0.1:$port"

section "driving traffic"
# Four concurrent socat clients with 64 KB each, a line through nc, a connection closed at
# once, and a second round of socat clients on fresh connections.
clients=4
size=$((64 * 1024))
head -c "$size" /dev/urandom >"$work/payload"
run_socat_round() {
    local round=$1 pids=() i
    for ((i = 0; i < clients; i++)); do
        timeout 20 socat -t 5 -T 10 - "TCP:127.0.0.1:$port" <"$work/payload" >"$work/echo.$round.$i" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[i]}" || fail "socat client $round.$i failed (exit $?)"
        cmp -s "$work/payload" "$work/echo.$round.$i" \
            || fail "socat client $round.$i got $(wc -c <"$work/echo.$round.$i") bytes back, not the $size it sent"
    done
}
run_socat_round 1
reply=$(printf 'hello\n' | timeout 10 nc -N 127.0.0.1 "$port") || fail "nc client failed"
[[ $reply == hello ]] || fail "nc client got '$reply' back instead of 'hello'"
timeout 10 nc -z 127.0.0.1 "$port" || fail "nc -z could not connect"
run_socat_round 2
echo "$((2 * clients + 2)) connections; $((2 * clients * size + 6)) bytes sent and echoed back"

section "stopping echo-server"
kill -TERM "$server_pid" 2>/dev/null || true
for _ in $(seq 100); do
    kill -0 "$strace_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$strace_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
fi
wait "$strace_pid" 2>/dev/null || true
strace_pid=""
server_pid=""

section "reading the trace"
# strace -f writes "PID  call(args...) = result"; -y annotates descriptors as "N<what>".
socket_fd='[0-9]+<(socket:|TCP|TCPv6|UDP|UDPv6|UDPLITE|UDPLITEv6|UNIX|UNIX-STREAM|UNIX-DGRAM|NETLINK|RAW|RAWv6)'
data_calls='read|write|readv|writev|recvfrom|sendto|recvmsg|sendmsg|recvmmsg|sendmmsg|accept|accept4|connect'
offending=$(grep -E \
    -e "^[0-9]+ +($data_calls)\($socket_fd" \
    -e "^[0-9]+ +($data_calls)\([0-9]+[,)]" \
    -e "^[0-9]+ +epoll_ctl\([^,]*, EPOLL_CTL_(ADD|MOD), $socket_fd" \
    -e "^[0-9]+ +p?poll\(\[.*fd=($socket_fd|[0-9]+,)" \
    -e "^[0-9]+ +p?select6?\(.*($socket_fd|\[[0-9]+[] ])" \
    "$trace" || true)
ring_calls=$(grep -cE '^[0-9]+ +io_uring_enter\(' "$trace" || true)
socket_calls=$(grep -cE '^[0-9]+ +socket\(' "$trace" || true)
echo "io_uring_enter calls: $ring_calls; sockets created directly: $socket_calls"

status=0
if ((ring_calls == 0)); then
    echo "check-syscalls: FAILED: no io_uring_enter call in the trace" >&2
    status=1
fi
if [[ -n $offending ]]; then
    count=$(printf '%s\n' "$offending" | wc -l)
    echo "check-syscalls: FAILED: $count calls did socket I/O outside io_uring (or used an unidentified descriptor); the first ones:" >&2
    printf '%s\n' "$offending" | head -n 40 >&2
    status=1
fi
if ((status == 0)); then
    echo "check-syscalls: OK: every socket read, write, accept and wait went through io_uring"
fi
exit "$status"
