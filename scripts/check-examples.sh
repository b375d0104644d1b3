#!/usr/bin/env bash
# Drives the example servers with real clients: wrk and h2load against http-hello,
# redis-benchmark and redis-cli against kv-server, three nc clients (and a flood and a client
# that never reads) against chat-server, socat through tcp-proxy in front of echo-server.
#
#   scripts/check-examples.sh
#
# Builds the examples in release mode, installs the clients when missing (scripts/bootstrap.sh:
# wrk, nghttp2-client, redis-tools, netcat-openbsd, socat), starts each server on a free
# loopback port (port 0; the port is read from its "listening on" line) and checks what the
# clients get, byte by byte or value by value. Loopback only; every client, load run and wait
# is bounded with timeout, and every server is stopped at the end. Exits non-zero on the first
# failed check.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PATH=$(scripts/bootstrap.sh --print-path wrk nghttp2-client redis-tools netcat-openbsd socat)
export PATH

started=$SECONDS
section() { printf '\n--- check-examples: %s (at %ds)\n' "$*" $((SECONDS - started)); }
fail() { printf 'check-examples: FAILED: %s\n' "$*" >&2; exit 1; }
ok() { printf 'ok: %s\n' "$*"; }

section "building the examples (release)"
for product in http-hello kv-server chat-server tcp-proxy echo-server; do
    timeout -k 10s 15m swift build -c release --product "$product"
done
bin=$(swift build -c release --show-bin-path)

work=$(mktemp -d "${TMPDIR:-/tmp}/torus-check-examples.XXXXXX")
pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local status=$? pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if ((status == 0)); then rm -rf "$work"; else echo "check-examples: logs kept in $work" >&2; fi
}
trap cleanup EXIT

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
    echo "$name listening on 127.0.0.1:$port"
}

# wait_for FILE TEXT: waits (at most 10 s) until FILE has the line TEXT.
wait_for() {
    for _ in $(seq 200); do
        grep -qxF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    fail "$(basename "$1") never got the line '$2'; it has: $(tr '\n' '|' <"$1")"
}

# =============================================================================================
section "http-hello: protocol checks with nc"
start_server http-hello --idle-timeout 1
http_port=$port
crlf() { printf '%s\r\n' "$@"; }

# Three pipelined requests (one with a Content-Length body, one chunked) and a 404, the last
# asking to close: four answers in order, then the server closes (nc ends without -N).
reply=$({ crlf "GET / HTTP/1.1" "Host: x" ""; crlf "POST / HTTP/1.1" "Content-Length: 5" ""; printf 'hello'
          crlf "POST / HTTP/1.1" "Transfer-Encoding: chunked" "" "3" "abc" "0" ""
          crlf "GET /missing HTTP/1.1" "Connection: close" ""; } | timeout 10 nc 127.0.0.1 "$http_port" | tr -d '\r') \
    || fail "pipelined requests: nc failed or the server did not close after Connection: close"
# (A body has no newline of its own: the next status line follows it on the same line.)
statuses=$(grep -o 'HTTP/1\.1 [0-9][0-9][0-9]' <<<"$reply" | tr '\n' '|')
[[ $statuses == "HTTP/1.1 200|HTTP/1.1 200|HTTP/1.1 200|HTTP/1.1 404|" ]] \
    || fail "pipelined requests got statuses '$statuses'"
[[ $(grep -o 'Hello, World!' <<<"$reply" | wc -l) == 3 ]] || fail "pipelined requests: expected 3 bodies, got: $reply"
ok "3 pipelined requests (Content-Length and chunked bodies) + 404 with Connection: close, answered in order, then closed"

reply=$(crlf "GET / HTTP/1.0" "" | timeout 10 nc 127.0.0.1 "$http_port" | tr -d '\r') || fail "HTTP/1.0 request was not closed"
[[ $reply == *"Hello, World!" ]] || fail "HTTP/1.0 got: $reply"
ok "HTTP/1.0 answered and closed by default"

reply=$(crlf "GET / HTTP/1.1" "Bad Header" "" "GET / HTTP/1.1" "" | timeout 10 nc 127.0.0.1 "$http_port" | tr -d '\r') \
    || fail "malformed header: the server did not close"
[[ $(head -n 1 <<<"$reply") == "HTTP/1.1 400 Bad Request" && $(grep -o 'HTTP/1\.1 [0-9]' <<<"$reply" | wc -l) == 1 ]] \
    || fail "malformed header got: $reply"
ok "malformed header -> 400 and close"

big=$(head -c 20000 /dev/zero | tr '\0' a)
reply=$(crlf "GET / HTTP/1.1" "X-Big: $big" "" | timeout 10 nc 127.0.0.1 "$http_port" | tr -d '\r') || fail "big header: not closed"
[[ $(head -n 1 <<<"$reply") == "HTTP/1.1 431 Request Header Fields Too Large" ]] || fail "20 KB header got: $(head -n 1 <<<"$reply")"
ok "20 KB of headers -> 431 and close"

# An idle keep-alive connection is closed after --idle-timeout (1 s here). socat's input
# stays open (a process substitution the shell does not wait for), so only the server's
# close ends it, well before its 10 s limit.
before=$SECONDS
reply=$(timeout 10 socat -t 1 - "TCP:127.0.0.1:$http_port" < <(crlf "GET / HTTP/1.1" ""; sleep 9) | tr -d '\r') \
    || fail "idle connection was not closed"
((SECONDS - before < 8)) || fail "idle connection stayed open $((SECONDS - before)) s with --idle-timeout 1"
[[ $reply == *"Hello, World!" ]] || fail "idle check got: $reply"
ok "idle keep-alive connection closed after the idle timeout"

section "http-hello: wrk -t1 -c32 -d3s"
timeout 30 wrk -t1 -c32 -d3s "http://127.0.0.1:$http_port/" | tee "$work/wrk.out"
grep -q 'Socket errors' "$work/wrk.out" && fail "wrk saw socket errors"
grep -q 'Non-2xx' "$work/wrk.out" && fail "wrk saw non-2xx responses"
requests=$(sed -n 's/^ *\([0-9][0-9]*\) requests in .*/\1/p' "$work/wrk.out")
[[ -n $requests ]] && ((requests > 0)) || fail "wrk made no requests"
ok "wrk: $requests requests, no socket errors, no non-2xx"

section "http-hello: h2load --h1 -n 5000 -c 16"
timeout 60 h2load --h1 -n 5000 -c 16 "http://127.0.0.1:$http_port/" | tee "$work/h2load.out"
grep -q '^requests: 5000 total, 5000 started, 5000 done, 5000 succeeded, 0 failed, 0 errored, 0 timeout' "$work/h2load.out" \
    || fail "h2load: not every request succeeded"
grep -q '^status codes: 5000 2xx' "$work/h2load.out" || fail "h2load: not every status was 2xx"
ok "h2load: 5000 of 5000 succeeded with 2xx"

# =============================================================================================
section "kv-server: redis-cli round trips"
start_server kv-server
kv_port=$port
cli() { timeout 10 redis-cli -p "$kv_port" "$@"; }
expect_cli() {
    local expected=$1 got
    shift
    got=$(cli "$@") || fail "redis-cli $* failed"
    [[ $got == "$expected" ]] || fail "redis-cli $*: expected '$expected', got '$got'"
}
expect_cli PONG PING
expect_cli OK SET greeting "hello world"
expect_cli "hello world" GET greeting
expect_cli "" GET missing
expect_cli 1 INCR counter
expect_cli 2 INCR counter
expect_cli 12 INCRBY counter 10
expect_cli "ERR value is not an integer or out of range" INCR greeting
expect_cli 2 EXISTS greeting counter missing
expect_cli OK SET session token EX 100
ttl=$(cli TTL session)
[[ $ttl == 100 || $ttl == 99 ]] || fail "TTL session: expected 100 or 99, got '$ttl'"
expect_cli -1 TTL greeting
expect_cli -2 TTL missing
expect_cli $'hello world\n12\n\ntoken' MGET greeting counter missing session
expect_cli OK MSET a 1 b 2
expect_cli "" SET a 3 NX
expect_cli 1 GET a
expect_cli 3 DEL greeting counter a
expect_cli 0 EXISTS greeting
expect_cli 2 DBSIZE
expect_cli OK FLUSHDB
expect_cli 0 DBSIZE
ok "redis-cli: PING SET GET INCR INCRBY EXISTS TTL MGET MSET SET NX DEL DBSIZE FLUSHDB answered by value"

reply=$(printf 'PING\r\nSET k "two words"\r\nGET k\r\nGET "unbalanced\r\nECHO still-here\r\n*1\r\n+BROKEN\r\nPING\r\n' \
        | timeout 10 nc 127.0.0.1 "$kv_port" | tr -d '\r' | tr '\n' '|') || fail "inline commands: the server did not close"
[[ $reply == '+PONG|+OK|$9|two words|-ERR Protocol error: unbalanced quotes in request|$10|still-here|-ERR Protocol error: expected '"'"'$'"'"', got '"'"'+'"'"'|' ]] \
    || fail "inline commands and protocol errors got: $reply"
ok "inline commands; a bad inline command answered with -ERR and the connection kept; a broken frame -> -ERR and close"

reply=$(printf '*2\r\n$3\r\nGET\r\n$999999999999\r\n' | timeout 10 nc 127.0.0.1 "$kv_port" | tr -d '\r') || fail "oversized bulk: not closed"
[[ $reply == "-ERR Protocol error: bulk string longer than the limit of 536870912 bytes" ]] || fail "oversized bulk got: $reply"
ok "a bulk string declared over 512 MiB is refused and the connection closed"

section "kv-server: redis-benchmark -q -t ping,set,get,incr,mset -P 16 -n 20000"
timeout 120 redis-benchmark -q -t ping,set,get,incr,mset -P 16 -n 20000 -p "$kv_port" 2>&1 | tr '\r' '\n' \
    | grep -v '^ *$' | grep -v 'rps=' | tee "$work/redis-benchmark.out"
for test in PING_INLINE PING_MBULK SET GET INCR 'MSET (10 keys)'; do
    grep -qF "$test: " "$work/redis-benchmark.out" && grep -F "$test: " "$work/redis-benchmark.out" | grep -q 'requests per second' \
        || fail "redis-benchmark printed no requests-per-second line for $test"
done
grep -qiE 'error|ERR ' "$work/redis-benchmark.out" && fail "redis-benchmark reported errors"
counter=$(cli GET counter:__rand_int__)
[[ $counter == 20000 ]] || fail "after 20000 INCRs of counter:__rand_int__, it is '$counter'"
ok "redis-benchmark: every test answered; the INCR counter reached 20000"

# =============================================================================================
section "chat-server: three clients, line by line"
start_server chat-server
chat_port=$port
declare -A client_fd
# join NAME: connects an nc client whose input is a FIFO we hold open (fd in client_fd).
join() {
    mkfifo "$work/$1.in"
    timeout 60 nc -N 127.0.0.1 "$chat_port" <"$work/$1.in" >"$work/$1.out" &
    pids+=($!)
    local fd
    exec {fd}>"$work/$1.in"
    client_fd[$1]=$fd
}
say() { printf '%s\n' "$2" >&"${client_fd[$1]}"; }
leave() {
    local fd=${client_fd[$1]}
    exec {fd}>&-
}

join A; wait_for "$work/A.out" "* welcome, you are guest1"
join B; wait_for "$work/B.out" "* welcome, you are guest2"; wait_for "$work/A.out" "* guest2 joined"
join C; wait_for "$work/C.out" "* welcome, you are guest3"; wait_for "$work/B.out" "* guest3 joined"
wait_for "$work/A.out" "* guest3 joined"
say A "/nick alice"
for c in A B C; do wait_for "$work/$c.out" "* guest1 is now alice"; done
say B "/nick alice"; wait_for "$work/B.out" "* nick alice is taken"
say B "/nick bob"
for c in A B C; do wait_for "$work/$c.out" "* guest2 is now bob"; done
say A "hello everyone"
wait_for "$work/B.out" "alice: hello everyone"; wait_for "$work/C.out" "alice: hello everyone"
say C "hi"
wait_for "$work/A.out" "guest3: hi"; wait_for "$work/B.out" "guest3: hi"
say B "/quit"
wait_for "$work/A.out" "* bob left"; wait_for "$work/C.out" "* bob left"
leave C  # nc -N shuts down its write side at the end of its input: the server sees the end.
wait_for "$work/A.out" "* guest3 left"
leave B; leave A
expected_A=$'* welcome, you are guest1\n* guest2 joined\n* guest3 joined\n* guest1 is now alice\n* guest2 is now bob\nguest3: hi\n* bob left\n* guest3 left'
expected_B=$'* welcome, you are guest2\n* guest3 joined\n* guest1 is now alice\n* nick alice is taken\n* guest2 is now bob\nalice: hello everyone\nguest3: hi'
expected_C=$'* welcome, you are guest3\n* guest1 is now alice\n* guest2 is now bob\nalice: hello everyone\n* bob left'
for c in A B C; do
    expected_var=expected_$c
    [[ $(<"$work/$c.out") == "${!expected_var}" ]] \
        || fail "chat client $c got, in full: $(tr '\n' '|' <"$work/$c.out") expected: $(tr '\n' '|' <<<"${!expected_var}")"
done
ok "chat: joins, renames (and a taken name), broadcasts to every other client, /quit and end of input; exact transcripts"

section "chat-server: a client that stops reading is dropped, the others are not held up"
start_server chat-server
chat_port=$port
join W; wait_for "$work/W.out" "* welcome, you are guest1"
# socat -u only sends: it never reads what the server writes to it. Its input stays open (a
# process substitution: not part of the job, so stopping socat does not wait for the sleep).
timeout 60 socat -u - "TCP:127.0.0.1:$chat_port" < <(exec sleep 60 2>/dev/null) &
pids+=($!)
wait_for "$work/W.out" "* guest2 joined"
line=$(head -c 99 /dev/zero | tr '\0' x)
{ yes "$line" || true; } | head -n 300000 >"$work/flood"  # yes ends with SIGPIPE: not a failure
timeout 60 nc -N 127.0.0.1 "$chat_port" <"$work/flood" >/dev/null || fail "the flooding client failed"
wait_for "$work/W.out" "* guest2 was dropped: too slow"
wait_for "$work/W.out" "* guest3 left"
flooded=$(grep -c "^guest3: $line\$" "$work/W.out" || true)
((flooded == 300000)) || fail "the reading client got $flooded of the 300000 flooded lines"
leave W
ok "a client that never reads was dropped with a notice; the reading client got all 300000 lines (30 MB)"

# =============================================================================================
section "tcp-proxy in front of echo-server: bytes both ways, half-close"
start_server echo-server
echo_port=$port
start_server tcp-proxy --upstream "127.0.0.1:$echo_port"
proxy_port=$port
head -c $((8 * 1024 * 1024)) /dev/urandom >"$work/payload"
# socat sends the file, shuts down its write side at its end, and reads until the echo
# server's end of stream comes back through the proxy.
timeout 60 socat -t 30 -T 30 - "TCP:127.0.0.1:$proxy_port" <"$work/payload" >"$work/echoed" || fail "socat through the proxy failed"
cmp "$work/payload" "$work/echoed" || fail "bytes through the proxy differ ($(wc -c <"$work/echoed") of 8 MiB came back)"
ok "8 MiB through the proxy and back, identical, ended by half-close on both sides"

for i in 1 2 3 4; do
    timeout 60 socat -t 30 -T 30 - "TCP:127.0.0.1:$proxy_port" <"$work/payload" >"$work/echoed.$i" &
    pids+=($!)
done
for i in 1 2 3 4; do
    wait "${pids[-$((5 - i))]}" || fail "concurrent socat client $i failed"
done
for i in 1 2 3 4; do cmp -s "$work/payload" "$work/echoed.$i" || fail "concurrent client $i got different bytes"; done
ok "4 concurrent clients x 8 MiB through the proxy, identical"

# The other direction on its own: an upstream that sends a file and closes without reading.
head -c $((2 * 1024 * 1024)) /dev/urandom >"$work/download"
# socat cannot listen on port 0 and say which port it got, so the port is picked here: below
# the kernel's ephemeral range (where no client socket of the earlier checks, TIME_WAIT ones
# included, can hold it: a random pick there once collided and socat's listen failed
# silently), and another one is tried if socat still cannot listen on it.
ephemeral_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
upstream_port=""
for _ in 1 2 3 4 5; do
    candidate=$((10000 + RANDOM % (ephemeral_low - 10000)))
    # -U: from the second address (cat) to the first (the accepted connection) only. fork:
    # the readiness probe below gets a copy of its own (and breaks it: stderr goes to a log).
    timeout 60 socat -U "TCP-LISTEN:$candidate,bind=127.0.0.1,reuseaddr,fork" "EXEC:cat $work/download" \
        2>>"$work/upstream-socat.log" &
    pids+=($!)
    for _ in $(seq 100); do
        kill -0 "${pids[-1]}" 2>/dev/null || break
        timeout 1 nc -z 127.0.0.1 "$candidate" 2>/dev/null && { upstream_port=$candidate; break; }
        sleep 0.05
    done
    [[ -n $upstream_port ]] && break
done
[[ -n $upstream_port ]] || { cat "$work/upstream-socat.log" >&2; fail "the upstream socat could not listen on any port tried"; }
start_server tcp-proxy --upstream "127.0.0.1:$upstream_port"
timeout 60 socat -t 30 -T 30 - "TCP:127.0.0.1:$port" </dev/null >"$work/downloaded" || fail "download through the proxy failed"
cmp "$work/download" "$work/downloaded" || { cat "$server_log" >&2; fail "the download through the proxy differs"; }
ok "2 MiB from an upstream that sends and closes: identical, and its end of stream reached the client"

section "All example checks passed in $((SECONDS - started))s"
