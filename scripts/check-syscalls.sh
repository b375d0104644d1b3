#!/usr/bin/env bash
# Checks, with strace, how the echo server moves socket data on each engine.
#
#   scripts/check-syscalls.sh [--engine io_uring|epoll|both]     (both by default)
#   KEEP_TRACE=1 scripts/check-syscalls.sh                       keeps the traces even on success
#
# Builds echo-server in release mode and, for each engine (TORUS_ENGINE=ENGINE), runs it with
# two event loops under strace on a free loopback port and drives it through five phases:
#
#   1. idle: 2 s with no client at all;
#   2. ping-pong: 2 concurrent clients x 500 messages, each sent only once the previous one
#      came back, so that the number of served messages is known;
#   3. bulk: socat clients with 64 KB each (twice 4 at once), a line through nc, a connection
#      closed at once, every byte compared;
#   4. idle again: 2 s after every client has gone;
#   5. stop (SIGTERM).
#
# Then it reads the trace. Sockets are recognised by strace's -y annotation (`9<socket:[1]>`,
# `9<TCP:[...]>`); other descriptors are fine (the Swift runtime reads its libraries and /proc,
# the loops use eventfds, the server writes to stdout).
#
# io_uring: io_uring_enter must have been called, and no read/write/recv*/send*/poll/select/
#   epoll/accept/connect call may have been made on a socket: all socket I/O goes through the
#   ring. (Creating and setting up sockets, socket/setsockopt/bind/listen, is done directly.)
# epoll: the loops wait in epoll_wait/epoll_pwait (which must be called), and make the socket
#   calls themselves, so each must be unable to block: every socket the server creates
#   (socket, accept4) is non-blocking (SOCK_NONBLOCK, or O_NONBLOCK / FIONBIO set before it is
#   used), and no data call (read/write/recv*/send*/accept*/connect) is made on a socket while
#   it is blocking. No io_uring_enter at all, and no poll/ppoll/select/pselect6 on any
#   descriptor (the engine's one wait is epoll).
# Both engines: no busy polling. The loops' wait calls (io_uring_enter, or epoll_wait*) are
#   counted per loop thread in each idle window: the waits that could sleep (any io_uring_enter;
#   an epoll_wait with a timeout other than 0) at most $IDLE_MAX_WAKEUPS, 10, in 2 s (a loop
#   with nothing to do sleeps in one wait and wakes only for its timers, the once-a-second
#   connection sweep), and all waits at most $IDLE_MAX_WAITS, 60 (under epoll each loop turn
#   calls epoll_wait at most once, with a zero timeout while jobs are ready, and a busy
#   loop every other turn; a sweep runs a few jobs: about 5 per wake-up today; a spinning
#   loop makes thousands), and per served message in the ping-pong phase (at most
#   $MAX_WAITS_PER_MESSAGE, 4: one wait for the message's bytes, one for the turn that runs
#   the resumed handler, one for a send that could not finish at once, and one to spare for
#   a wake-up or a timer; a loop that spins calls its wait thousands of times a second, tens
#   of times per message even under strace). A loop that spins without waiting is caught too:
#   at most $IDLE_MAX_CALLS (100) traced calls of any kind per loop thread in each idle window,
#   and at most $MAX_SOCKET_CALLS_PER_MESSAGE (8) socket calls per ping-pong message (a
#   receive, its EAGAIN, a send, and room for a short send's retry; spinning on EAGAIN makes
#   hundreds).
#
# Loopback only; stops by itself (every client and wait is bounded).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage="usage: scripts/check-syscalls.sh [--engine io_uring|epoll|both]"
engine=both
while (($#)); do
    case $1 in
        --engine) [[ $# -ge 2 ]] || { echo "--engine needs a value; $usage" >&2; exit 2; }; engine=$2; shift 2 ;;
        -h | --help) echo "$usage"; exit 0 ;;
        *) echo "unknown option $1; $usage" >&2; exit 2 ;;
    esac
done
case $engine in
    io_uring | epoll) engines=("$engine") ;;
    both) engines=(io_uring epoll) ;;
    *) echo "--engine must be io_uring, epoll or both; $usage" >&2; exit 2 ;;
esac

PATH=$(scripts/bootstrap.sh --print-path strace socat netcat-openbsd)
export PATH

readonly idle_seconds=2
readonly idle_max_wakeups=${IDLE_MAX_WAKEUPS:-10}
readonly idle_max_waits=${IDLE_MAX_WAITS:-60}
readonly max_waits_per_message=${MAX_WAITS_PER_MESSAGE:-4}
readonly idle_max_calls=${IDLE_MAX_CALLS:-100}
readonly max_socket_calls_per_message=${MAX_SOCKET_CALLS_PER_MESSAGE:-8}
readonly pingpong_clients=2
readonly pingpong_messages=500

section() { printf '\n--- check-syscalls: %s\n' "$*"; }
fail() { printf 'check-syscalls: FAILED: %s\n' "$*" >&2; exit 1; }

section "building echo-server (release)"
swift build -c release --product echo-server
server="$(swift build -c release --show-bin-path)/echo-server"

work=$(mktemp -d "${TMPDIR:-/tmp}/torus-check-syscalls.XXXXXX")
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
        echo "check-syscalls: traces and server output kept in $work" >&2
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

now() { date +%s.%N; }

# pingpong PORT COUNT: one connection (bash's /dev/tcp), COUNT lines each sent only after the
# previous one came back intact.
pingpong() {
    local port=$1 count=$2 i line fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
    for ((i = 0; i < count; i++)); do
        printf 'message %d\n' "$i" >&"$fd" || return 1
        IFS= read -r -t 10 line <&"$fd" || return 1
        [[ $line == "message $i" ]] || return 1
    done
    exec {fd}>&-
}

# Four concurrent socat clients with 64 KB each.
run_socat_round() {
    local round=$1 dir=$2 port=$3 pids=() i
    for ((i = 0; i < 4; i++)); do
        timeout 20 socat -t 5 -T 10 - "TCP:127.0.0.1:$port" <"$work/payload" >"$dir/echo.$round.$i" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[i]}" || fail "socat client $round.$i failed (exit $?)"
        cmp -s "$work/payload" "$dir/echo.$round.$i" \
            || fail "socat client $round.$i got $(wc -c <"$dir/echo.$round.$i") bytes back, not the $(wc -c <"$work/payload") it sent"
    done
}

head -c $((64 * 1024)) /dev/urandom >"$work/payload"

syscalls=read,write,readv,writev,recvfrom,sendto,recvmsg,sendmsg,recvmmsg,sendmmsg
syscalls+=,epoll_wait,epoll_pwait,epoll_pwait2,epoll_ctl,poll,ppoll,select,pselect6
syscalls+=,accept,accept4,connect,socket,fcntl,ioctl,io_uring_setup,io_uring_enter

# trace ENGINE: runs echo-server on ENGINE under strace through the phases above. Leaves the
# trace, one call per line ("TID SECONDS call(args) = result", strace's split
# "<unfinished ...>" / "<... resumed>" halves joined, in the order the calls returned), in
# $work/ENGINE/trace, and the phases' bounds in $work/ENGINE/phases.
trace() {
    local engine=$1 dir=$work/$1 port i pids
    mkdir -p "$dir"
    section "$engine: starting echo-server (TORUS_ENGINE=$engine, 2 loops) under strace"
    # Port 0: the kernel picks a free port and the server prints it. stdbuf makes its standard
    # output line-buffered, so that the line arrives while it runs.
    TORUS_ENGINE=$engine strace -f -qq -y -ttt -e trace="$syscalls" -o "$dir/strace.log" \
        stdbuf -oL "$server" --host 127.0.0.1 --port 0 --threads 2 >"$dir/server.out" 2>&1 &
    strace_pid=$!
    port=""
    for _ in $(seq 200); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$dir/server.out")
        [[ -n $port ]] && break
        kill -0 "$strace_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $port ]]; then
        cat "$dir/server.out" >&2
        fail "$engine: the server did not start under strace (is ptrace allowed here?)"
    fi
    server_pid=$(child_of "$strace_pid") || fail "cannot find the server process under strace"
    echo "echo-server (pid $server_pid) listening on 127.0.0.1:$port"
    sed 's/^/  server: /' "$dir/server.out"
    # The listening line ends with the engine the server runs ("... on epoll").
    if [[ $(grep -m 1 'listening on' "$dir/server.out") =~ \ on\ ([a-z_]+)$ && ${BASH_REMATCH[1]} != "$engine" ]]; then
        fail "$engine: the server says it runs on ${BASH_REMATCH[1]}, not on $engine"
    fi
    # The loop threads, by the name each loop gives its thread: the wait counts are theirs
    # (the Swift runtime's Dispatch has an epoll thread of its own, which is not Torus's).
    local task
    : >"$dir/loops"
    for task in /proc/"$server_pid"/task/*; do
        [[ $(<"$task/comm") == torus-loop* ]] 2>/dev/null && echo "${task##*/} $(<"$task/comm")" >>"$dir/loops"
    done
    echo "loop threads: $(tr '\n' ' ' <"$dir/loops")"

    section "$engine: ${idle_seconds} s idle, no client"
    sleep 0.5  # the start-up's last turns are not idleness
    local idle1_start idle1_end
    idle1_start=$(now); sleep "$idle_seconds"; idle1_end=$(now)

    section "$engine: ping-pong, $pingpong_clients clients x $pingpong_messages messages"
    local pingpong_start pingpong_end
    pingpong_start=$(now)
    pids=()
    for ((i = 0; i < pingpong_clients; i++)); do
        timeout 60 bash -c "$(declare -f pingpong); pingpong $port $pingpong_messages" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do wait "${pids[i]}" || fail "$engine: ping-pong client $i failed (exit $?)"; done
    pingpong_end=$(now)
    echo "$((pingpong_clients * pingpong_messages)) messages echoed one at a time per connection"

    section "$engine: bulk traffic"
    run_socat_round 1 "$dir" "$port"
    local reply
    reply=$(printf 'hello\n' | timeout 10 nc -N 127.0.0.1 "$port") || fail "$engine: nc client failed"
    [[ $reply == hello ]] || fail "$engine: nc client got '$reply' back instead of 'hello'"
    timeout 10 nc -z 127.0.0.1 "$port" || fail "$engine: nc -z could not connect"
    run_socat_round 2 "$dir" "$port"
    echo "10 connections; $((2 * 4 * 64 * 1024 + 6)) bytes sent and echoed back"

    section "$engine: ${idle_seconds} s idle, every client gone"
    sleep 0.5  # the last connections' closes
    local idle2_start idle2_end
    idle2_start=$(now); sleep "$idle_seconds"; idle2_end=$(now)

    section "$engine: stopping echo-server"
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

    printf 'idle1 %s %s\npingpong %s %s\nidle2 %s %s\n' "$idle1_start" "$idle1_end" \
        "$pingpong_start" "$pingpong_end" "$idle2_start" "$idle2_end" >"$dir/phases"
    # Join "<unfinished ...>" with its "<... call resumed>"; drop signal and exit lines.
    awk '
        / <unfinished \.\.\.>$/ { pending[$1] = substr($0, 1, length($0) - length(" <unfinished ...>")); next }
        /^[0-9]+ +[0-9.]+ +<\.\.\. [a-z0-9_]+ resumed>/ {
            rest = $0; sub(/^[^>]*resumed>/, "", rest)
            if ($1 in pending) { print pending[$1] rest; delete pending[$1] }
            next
        }
        /^[0-9]+ +[0-9.]+ +(---|\+\+\+)/ { next }
        { print }
        END { for (tid in pending) print pending[tid] " <unfinished: did not return>" }
    ' "$dir/strace.log" >"$dir/trace"
}

# The start of a trace line, and what strace -y shows for a socket.
readonly line_start='^[0-9]+ +[0-9]+\.[0-9]+ +'
readonly socket_fd='[0-9]+<(socket:|TCP|TCPv6|UDP|UDPv6|UDPLITE|UDPLITEv6|UNIX|UNIX-STREAM|UNIX-DGRAM|NETLINK|RAW|RAWv6)'
readonly data_calls='read|write|readv|writev|recvfrom|sendto|recvmsg|sendmsg|recvmmsg|sendmmsg|accept|accept4|connect'

# check_waits ENGINE CALLS: no busy polling, from the loop threads' wait calls (CALLS, a regex
# of call names) and their other calls. Prints the counts; returns non-zero if a bound is
# exceeded.
check_waits() {
    local engine=$1 calls=$2 dir=$work/$1 status=0
    local -a idle1 pingpong idle2
    read -r -a idle1 < <(sed -n 's/^idle1 //p' "$dir/phases")
    read -r -a pingpong < <(sed -n 's/^pingpong //p' "$dir/phases")
    read -r -a idle2 < <(sed -n 's/^idle2 //p' "$dir/phases")
    # Per loop thread, by the time each call began: wait calls in all, in each idle window and
    # in the ping-pong phase; every traced call in each idle window; socket data calls and
    # epoll_ctl calls in the ping-pong phase. (Without named loop threads: every thread.)
    [[ -s $dir/loops ]] || echo "check-syscalls: warning: no thread named torus-loop-N; counting every thread's calls" >&2
    awk -v calls="^($calls)\\\\(" -v data="^($data_calls)\\\\(" -v sock="^$socket_fd" \
        -v i1="${idle1[0]}" -v i1e="${idle1[1]}" -v p="${pingpong[0]}" -v pe="${pingpong[1]}" \
        -v i2="${idle2[0]}" -v i2e="${idle2[1]}" '
        FILENAME != ARGV[ARGC - 1] { loop[$1] = 1; loops++; next }
        loops && !($1 in loop) { next }
        # Whether a wait call was made with a zero timeout (it could not sleep).
        function polls(line) {
            if (line ~ /^[0-9]+ +[0-9.]+ +epoll_wait\(/) return line ~ /, 0\) += /
            if (line ~ /^[0-9]+ +[0-9.]+ +epoll_pwait\(/) return line ~ /, 0, (NULL|\[[^]]*\]), [0-9]+\) += /
            if (line ~ /^[0-9]+ +[0-9.]+ +epoll_pwait2\(/) return line ~ /\{tv_sec=0, tv_nsec=0\}/
            return 0
        }
        {
            in1 = $2 >= i1 && $2 < i1e; in2 = $2 >= i2 && $2 < i2e; inp = $2 >= p && $2 < pe
            seen[$1] = 1
            if (in1) any1[$1]++
            if (in2) any2[$1]++
            if ($3 ~ calls) {
                all[$1]++
                sleeps = !polls($0)
                if (in1) { idle1[$1]++; wake1[$1] += sleeps }
                if (inp) ping[$1]++
                if (in2) { idle2[$1]++; wake2[$1] += sleeps }
            }
            if (inp && $3 ~ data) { args = $3; sub(/^[a-z0-9_]+\(/, "", args); if (args ~ sock) sockets[$1]++ }
            if (inp && $3 ~ /^epoll_ctl\(/) ctl[$1]++
        }
        END {
            for (tid in seen) printf "%s %d %d %d %d %d %d %d %d %d %d\n", tid, all[tid], idle1[tid], ping[tid], idle2[tid],
                any1[tid], any2[tid], sockets[tid], ctl[tid], wake1[tid], wake2[tid]
        }
    ' "$dir/loops" "$dir/trace" | sort -n >"$dir/waits"
    local threads waiting total_ping total_sockets total_ctl messages=$((pingpong_clients * pingpong_messages))
    threads=$(wc -l <"$dir/waits")
    waiting=$(awk '$2 > 0' "$dir/waits" | wc -l)
    echo "loop threads: $threads, of which $waiting called ${calls//|/ or }; per thread, wait calls (idle: sleeping waits / all waits / all traced calls):"
    printf '  %-8s %10s %18s %12s %18s\n' thread "waits" "idle 1st" "ping-pong" "idle 2nd"
    while read -r tid all w1 wp w2 c1 c2 _ _ s1 s2; do
        printf '  %-8s %10s %18s %12s %18s\n' "$tid" "$all" "$s1 / $w1 / $c1" "$wp" "$s2 / $w2 / $c2"
        if ((s1 > idle_max_wakeups || s2 > idle_max_wakeups)); then
            echo "check-syscalls: FAILED: $engine: thread $tid woke $s1 and $s2 times in the ${idle_seconds} s idle windows (at most $idle_max_wakeups each): the loop does not sleep when idle" >&2
            status=1
        fi
        if ((w1 > idle_max_waits || w2 > idle_max_waits)); then
            echo "check-syscalls: FAILED: $engine: thread $tid made $w1 and $w2 wait calls in the ${idle_seconds} s idle windows (at most $idle_max_waits each): the loop polls when idle" >&2
            status=1
        fi
        if ((c1 > idle_max_calls || c2 > idle_max_calls)); then
            echo "check-syscalls: FAILED: $engine: thread $tid made $c1 and $c2 system calls in the ${idle_seconds} s idle windows (at most $idle_max_calls each): the loop spins when idle" >&2
            status=1
        fi
    done <"$dir/waits"
    ((waiting > 0)) || { echo "check-syscalls: FAILED: $engine: no loop thread called ${calls//|/ or }" >&2; status=1; }
    total_ping=$(awk '{ s += $4 } END { print s + 0 }' "$dir/waits")
    total_sockets=$(awk '{ s += $8 } END { print s + 0 }' "$dir/waits")
    total_ctl=$(awk '{ s += $9 } END { print s + 0 }' "$dir/waits")
    per() { awk -v a="$1" -v b="$messages" 'BEGIN { printf "%.2f", a / b }'; }
    echo "ping-pong, $messages messages: $total_ping wait calls, $(per "$total_ping") per message (at most $max_waits_per_message);" \
        "$total_sockets socket calls, $(per "$total_sockets") per message (at most $max_socket_calls_per_message); $total_ctl epoll_ctl calls, $(per "$total_ctl") per message"
    if ((total_ping > max_waits_per_message * messages)); then
        echo "check-syscalls: FAILED: $engine: more than $max_waits_per_message wait calls per served message: the loop polls" >&2
        status=1
    fi
    if ((total_sockets > max_socket_calls_per_message * messages)); then
        echo "check-syscalls: FAILED: $engine: more than $max_socket_calls_per_message socket calls per served message: the loop retries calls that cannot succeed" >&2
        status=1
    fi
    return $status
}

# The io_uring rule: every socket read, write, accept and wait goes through the ring.
check_io_uring() {
    local dir=$work/io_uring status=0 offending ring_calls socket_calls count
    section "io_uring: reading the trace"
    offending=$(grep -E \
        -e "$line_start($data_calls)\($socket_fd" \
        -e "$line_start($data_calls)\([0-9]+[,)]" \
        -e "${line_start}epoll_ctl\([^,]*, EPOLL_CTL_(ADD|MOD), $socket_fd" \
        -e "${line_start}p?poll\(\[.*fd=($socket_fd|[0-9]+,)" \
        -e "${line_start}p?select6?\(.*($socket_fd|\[[0-9]+[] ])" \
        "$dir/trace" || true)
    ring_calls=$(grep -cE "${line_start}io_uring_enter\(" "$dir/trace" || true)
    socket_calls=$(grep -cE "${line_start}socket\(" "$dir/trace" || true)
    echo "io_uring_enter calls: $ring_calls; sockets created directly: $socket_calls"
    if ((ring_calls == 0)); then
        echo "check-syscalls: FAILED: io_uring: no io_uring_enter call in the trace" >&2
        status=1
    fi
    if [[ -n $offending ]]; then
        count=$(printf '%s\n' "$offending" | wc -l)
        echo "check-syscalls: FAILED: io_uring: $count calls did socket I/O outside io_uring (or used an unidentified descriptor); the first ones:" >&2
        printf '%s\n' "$offending" | head -n 40 >&2
        status=1
    fi
    check_waits io_uring io_uring_enter || status=1
    ((status == 0)) && echo "check-syscalls: io_uring: OK: every socket read, write, accept and wait went through io_uring; no busy polling"
    return $status
}

# The epoll rule: the loops call the socket functions themselves, on non-blocking sockets only.
check_epoll() {
    local dir=$work/epoll status=0 waits ring_calls setups polls problems created count
    section "epoll: reading the trace"
    waits=$(grep -cE "${line_start}epoll_(p?wait|pwait2)\(" "$dir/trace" || true)
    ring_calls=$(grep -cE "${line_start}io_uring_enter\(" "$dir/trace" || true)
    setups=$(grep -cE "${line_start}io_uring_setup\(" "$dir/trace" || true)
    polls=$(grep -E "${line_start}(p?poll|p?select6?)\(" "$dir/trace" || true)
    echo "epoll_wait/epoll_pwait calls: $waits; io_uring_enter calls: $ring_calls; io_uring_setup calls: $setups"
    if ((waits == 0)); then
        echo "check-syscalls: FAILED: epoll: no epoll_wait or epoll_pwait call in the trace" >&2
        status=1
    fi
    if ((ring_calls > 0)); then
        echo "check-syscalls: FAILED: epoll: $ring_calls io_uring_enter calls under TORUS_ENGINE=epoll; the first ones:" >&2
        grep -E "${line_start}io_uring_enter\(" "$dir/trace" | head -n 5 >&2
        status=1
    fi
    if [[ -n $polls ]]; then
        echo "check-syscalls: FAILED: epoll: $(printf '%s\n' "$polls" | wc -l) poll/select calls (the engine waits in epoll only); the first ones:" >&2
        printf '%s\n' "$polls" | head -n 10 >&2
        status=1
    fi

    # In the order the calls returned: a socket's blocking mode from its creation (socket,
    # accept, accept4) and later fcntl(F_SETFL)/ioctl(FIONBIO); each data call on a socket
    # must find it non-blocking. A descriptor number is tracked until it is created again.
    # Prints "created N nonblocking M" and then one line per problem.
    awk -v data="^($data_calls)\\\\(" -v sock="^$socket_fd" '
        function result(line,   s) { if (!match(line, /\) += [0-9]+/)) return -1; s = substr(line, RSTART, RLENGTH); sub(/^\) += /, "", s); return s + 0 }
        function fd_of(args,   n) { n = args; sub(/^[a-z0-9_]+\(/, "", n); return n + 0 }
        function settle(fd) {
            if ((fd in nonblocking) && !nonblocking[fd] && !(fd in reported)) {
                problems[++np] = "socket " fd " was never made non-blocking: " creation[fd]
            }
        }
        {
            call = $3; line = $0; sub(/^[0-9]+ +[0-9.]+ +/, "", line)
            if (call ~ /^(socket|accept|accept4)\(/) {
                fd = result(line)
                if (fd < 0) next
                settle(fd); delete reported[fd]
                created++
                nonblocking[fd] = (call ~ /^socket\(/ || call ~ /^accept4\(/) && line ~ /SOCK_NONBLOCK/
                if (nonblocking[fd]) nb++
                creation[fd] = $1 " " line
            }
            if (call ~ /^fcntl\(/ && line ~ /F_SETFL/ && result(line) == 0) {
                fd = fd_of(line)
                if (fd in nonblocking) nonblocking[fd] = (line ~ /O_NONBLOCK/)
            }
            if (call ~ /^ioctl\(/ && line ~ /FIONBIO/ && result(line) == 0) {
                fd = fd_of(line)
                if (fd in nonblocking) nonblocking[fd] = (line ~ /FIONBIO, \[[1-9]/)
            }
            if (call ~ data) {
                args = line; sub(/^[a-z0-9_]+\(/, "", args)
                if (args !~ sock && args !~ /^[0-9]+[,)]/) next   # not a socket
                fd = args + 0
                if (!(fd in nonblocking)) {
                    problems[++np] = "a socket the trace did not see created: " $1 " " line
                    nonblocking[fd] = 0; reported[fd] = 1; creation[fd] = "unseen"
                } else if (!nonblocking[fd] && !(fd in reported)) {
                    problems[++np] = "used while blocking (its first such call): socket " fd ": " $1 " " line
                    reported[fd] = 1
                }
            }
        }
        END {
            for (fd in nonblocking) settle(fd)
            printf "created %d nonblocking %d\n", created, nb
            for (i = 1; i <= np; i++) print problems[i]
        }
    ' "$dir/trace" >"$dir/sockets"
    created=$(head -n 1 "$dir/sockets")
    created=${created#created }
    echo "sockets created (socket, accept, accept4): ${created% nonblocking *}, ${created#* nonblocking } of them with SOCK_NONBLOCK"
    local example
    for example in "socket\\(" "accept4\\(.*\\) += [0-9]+"; do
        example=$(grep -E "$line_start$example" "$dir/trace" | head -n 1 | sed -E "s/$line_start//")
        [[ -z $example ]] || echo "  e.g. $example"
    done
    problems=$(tail -n +2 "$dir/sockets")
    if [[ -n $problems ]]; then
        count=$(printf '%s\n' "$problems" | wc -l)
        echo "check-syscalls: FAILED: epoll: $count socket(s) blocking (a loop thread could block on them); the first ones:" >&2
        printf '%s\n' "$problems" | head -n 20 >&2
        status=1
    fi
    check_waits epoll 'epoll_wait|epoll_pwait|epoll_pwait2' || status=1
    ((status == 0)) && echo "check-syscalls: epoll: OK: every socket is non-blocking, the loops wait in epoll only, no io_uring, no busy polling"
    return $status
}

results=()
status=0
for engine in "${engines[@]}"; do
    trace "$engine"
    if "check_$engine"; then results+=("$engine: OK"); else results+=("$engine: FAILED"); status=1; fi
done
section "${results[*]}"
exit "$status"
