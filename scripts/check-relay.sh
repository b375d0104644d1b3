#!/usr/bin/env bash
# Drives tcp-proxy in front of echo-server, and echo-server over TLS, through fault-relay
# (Tests/FaultRelay: delays, trickles, cuts at a random byte, stalls one direction,
# half-closes) and checks what the clients get and that the servers give back every
# descriptor and serve on.
#
#   scripts/check-relay.sh
#
# Builds fault-relay, echo-server, tcp-proxy and echo-client in release mode, makes throwaway
# certificates (scripts/make-test-certs.sh) in a temporary directory, and for each check starts
# the servers and a relay on free loopback ports (port 0; each port read from its "listening
# on" line), the servers on TORUS_ENGINE's engine. The relay sits between tcp-proxy and
# echo-server (upstream) or between the client and tcp-proxy (client). The clients are a small
# Python program (non-blocking sockets, plaintext or Python's ssl, every byte compared) and
# echo-client. Expectations: with a delay or a trickle every byte comes back, in order; a
# half-close reaches the server and exactly the bytes before it come back, then end of stream;
# a cut ends the client's connection (end of stream or a reset) within 10 s, with a prefix of
# what it sent; a stalled direction is closed by the servers' idle timeout (2 s) or the TLS
# handshake timeout (10 s) in time; afterwards the servers' descriptor counts (/proc/PID/fd)
# return to their values before the check (polled every 100 ms, with a deadline) and a fresh
# connection is served; every server exits 0 on SIGTERM. The relays' seeds are fixed, so a
# failure replays. Loopback only; every build, client and wait is bounded. Exits non-zero on
# the first failed check and keeps the logs. About a minute per engine once built.
# shellcheck disable=SC2317  # called by the EXIT trap
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PATH=$(scripts/bootstrap.sh --print-path python3)
export PATH

started=$SECONDS
section() { printf '\n--- check-relay: %s (at %ds)\n' "$*" $((SECONDS - started)); }
fail() { printf 'check-relay: FAILED: %s\n' "$*" >&2; exit 1; }
ok() { printf 'ok: %s\n' "$*"; }

section "building fault-relay, echo-server, tcp-proxy and echo-client (release)"
for product in fault-relay echo-server tcp-proxy echo-client; do
    timeout -k 10s 15m swift build -c release --product "$product"
done
bin=$(swift build -c release --show-bin-path)

work=$(mktemp -d "${TMPDIR:-/tmp}/torus-check-relay.XXXXXX")
pids=()
cleanup() {
    local status=$? pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work/certs"
    if ((status == 0)); then rm -rf "$work"; else echo "check-relay: logs kept in $work" >&2; fi
}
trap cleanup EXIT

scripts/make-test-certs.sh "$work/certs" >/dev/null
ca=$work/certs/ca.pem
tls_args=(--tls-cert "$work/certs/server.pem" --tls-key "$work/certs/server.key")

# start NAME [ARGS...]: starts $bin/NAME on a free loopback port; sets `port`, `pid` and `log`
# once it prints "NAME listening on 127.0.0.1:PORT". The examples' line ends with their engine,
# which must be TORUS_ENGINE's when that is set.
start() {
    local name=$1
    shift
    log=$(mktemp "$work/$name.XXXXXX.log")  # there before the child opens it: sed reads it at once
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
    local line
    line=$(grep -m 1 'listening on' "$log")
    if [[ -n ${TORUS_ENGINE-} && $name != fault-relay && ! $line =~ \ on\ $TORUS_ENGINE$ ]]; then
        fail "$name runs on another engine than TORUS_ENGINE=$TORUS_ENGINE: $line"
    fi
}

fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# fds_reach PID COUNT SECONDS: waits until PID's descriptor count is COUNT, polling every
# 100 ms, for at most SECONDS; sets `waited` to the time it took (seconds, one decimal).
fds_reach() {
    local pid=$1 want=$2 limit=$3 begin
    begin=$(now_us)
    for _ in $(seq $((limit * 10))); do
        if (($(fd_count "$pid") == want)); then
            waited=$(seconds_since "$begin")
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# wait_fds NAME PID COUNT SECONDS: fds_reach, or the check fails, listing the descriptors.
wait_fds() {
    fds_reach "$2" "$3" "$4" && return 0
    fail "$1 (pid $2) holds $(fd_count "$2") descriptors ${4}s later, not $3: $(ls -l "/proc/$2/fd" | tail -n +2 | tr '\n' '|')"
}

# stop NAME PID: the process must still run; SIGTERM must end it with status 0 within 30 s.
stop() {
    local name=$1 pid=$2 code=0
    kill -0 "$pid" 2>/dev/null || fail "$name (pid $pid) is no longer running"
    kill -TERM "$pid"
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; fail "$name (pid $pid) did not exit within 30 s of SIGTERM"; }
    wait "$pid" || code=$?
    ((code == 0)) || fail "$name (pid $pid) exited with status $code after SIGTERM"
}

# The client: non-blocking sockets and select, so that sending and receiving overlap (a 1 MiB
# echo cannot deadlock on full buffers), plaintext or TLS through Python's ssl (OpenSSL, not
# TorusTLS). Prints one line; exits 1 with the reason when an expectation fails.
cat >"$work/client.py" <<'PYTHON'
import argparse, random, select, socket, ssl, sys, time

parser = argparse.ArgumentParser()
parser.add_argument("mode", choices=["echo", "cut", "stall"])
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--bytes", type=int, default=1 << 20)
parser.add_argument("--expect", type=int, help="echo: exactly this many bytes come back, then end of stream")
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--timeout", type=float, default=30)
parser.add_argument("--min-seconds", type=float, default=0, help="the end must not come before this")
parser.add_argument("--tls", metavar="CA")
parser.add_argument("--tls12", action="store_true")
parser.add_argument("--allow-silence", action="store_true", help="stall: no end within --timeout is fine too")
args = parser.parse_args()
payload = random.Random(args.seed).randbytes(args.bytes)
start = time.monotonic()
deadline = start + args.timeout

def fail(reason):
    print(f"{args.mode}: {reason}")
    sys.exit(1)

def describe(error):
    reason = getattr(error, "reason", None)
    return f"{type(error).__name__} ({reason})" if reason else type(error).__name__

def wait(sock, readable, writable):
    left = deadline - time.monotonic()
    if left <= 0:
        return False
    r, w, _ = select.select([sock] if readable else [], [sock] if writable else [], [], left)
    return bool(r or w)

def connect():
    raw = socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout)
    raw.setblocking(False)
    if not args.tls:
        return raw, None
    context = ssl.create_default_context(cafile=args.tls)
    if args.tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    tls = context.wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
    while True:
        try:
            tls.do_handshake()
            return tls, None
        except ssl.SSLWantReadError:
            ready = wait(tls, True, False)
        except ssl.SSLWantWriteError:
            ready = wait(tls, False, True)
        except (ssl.SSLError, OSError) as error:
            return tls, f"handshake failed: {describe(error)}"
        if not ready:
            return tls, "timeout"

def converse(sock):
    """Sends the payload (half-closing after it, plaintext only) while reading; returns the
    bytes received and how the stream ended: "eof", "reset", an error, "done" (TLS: all back)
    or "timeout"."""
    sent, received, write_open = 0, bytearray(), True
    want = args.expect if args.expect is not None else args.bytes
    while True:
        if args.tls and args.mode == "echo" and len(received) >= want and sent == len(payload):
            return received, "done"
        writing = write_open and sent < len(payload)
        if not wait(sock, True, writing):
            return received, "timeout"
        if writing:
            try:
                sent += sock.send(payload[sent:sent + 65536])
                if sent == len(payload) and not args.tls and args.mode != "stall":
                    sock.shutdown(socket.SHUT_WR)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
            except OSError:
                write_open = False  # the peer is gone: read what is left, then its end
        while True:
            try:
                chunk = sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except ConnectionResetError:
                return received, "reset"
            except (ssl.SSLError, OSError) as error:
                return received, describe(error)
            if not chunk:
                return received, "eof"
            received += chunk

sock, handshake_error = connect()
if handshake_error is not None:
    end, received = handshake_error, b""
else:
    received, end = converse(sock)
elapsed = time.monotonic() - start
sock.close()
what = f"{len(received)} of {args.bytes} bytes back, then {end}, after {elapsed:.2f} s"
if received != payload[:len(received)]:
    fail(f"the bytes that came back differ from those sent: {what}")
if end == "timeout" and not (args.mode == "stall" and args.allow_silence):
    fail(f"no end within {args.timeout} s (a hang): {what}")
if elapsed < args.min_seconds:
    fail(f"ended before {args.min_seconds} s: {what}")
if args.mode == "echo":
    want = args.expect if args.expect is not None else args.bytes
    good_end = "done" if args.tls else "eof"
    if len(received) != want or end != good_end:
        fail(f"expected {want} bytes back, then {good_end}: {what}")
elif args.mode == "cut" and len(received) == args.bytes:
    fail(f"the cut did not show: {what}")
elif args.mode == "cut" and args.tls and handshake_error is None:
    fail(f"the handshake completed across a cut meant for it: {what}")
elif args.mode == "stall" and args.tls and handshake_error is None and end != "timeout":
    fail(f"the handshake completed across a stall: {what}")
print(what)
PYTHON
client() { timeout -k 5s 60s python3 "$work/client.py" "$@"; }
# short_end LINE: the client's line as "BYTES B, then END"; joined TEXT...: "TEXT; TEXT";
# tally TEXT...: each distinct TEXT once, with its count ("4x TEXT").
short_end() { sed -E 's/^([0-9]+) of [0-9]+ bytes back, then (.*), after .*/\1 B, then \2/' <<<"$1"; }
joined() { local text; text=$(printf '%s; ' "$@"); echo "${text%; }"; }
tally() { local text; text=$(printf '%s\n' "$@" | sort | uniq -c | sed -E 's/^ *([0-9]+) (.*)/\1x \2; /' | tr -d '\n'); echo "${text%; }"; }
# now_us, seconds_since US: a monotonic enough clock for the record (EPOCHREALTIME, in µs).
now_us() { echo "${EPOCHREALTIME/[.,]/}"; }
seconds_since() { local tenths=$((($(now_us) - $1) / 100000)); echo "$((tenths / 10)).$((tenths % 10))"; }

# proxy_chain WHERE RELAY_ARGS...: echo-server, tcp-proxy and a fault-relay with RELAY_ARGS,
# the relay between tcp-proxy and echo-server (WHERE=upstream) or between the client and
# tcp-proxy (WHERE=client). The servers get echo_args and proxy_args. Sets `entry` (the port clients
# connect to), echo_pid, proxy_pid, relay_pid and relay_log, and echo_fds and proxy_fds, the
# servers' descriptor counts before any connection.
echo_args=()
proxy_args=()
proxy_chain() {
    local where=$1
    shift
    start echo-server ${echo_args[@]+"${echo_args[@]}"}
    echo_pid=$pid
    local echo_port=$port
    if [[ $where == upstream ]]; then
        start fault-relay --upstream "127.0.0.1:$echo_port" --max-seconds 120 --verbose "$@"
        relay_pid=$pid relay_log=$log
        start tcp-proxy --upstream "127.0.0.1:$port" ${proxy_args[@]+"${proxy_args[@]}"}
        proxy_pid=$pid entry=$port
    else
        start tcp-proxy --upstream "127.0.0.1:$echo_port" ${proxy_args[@]+"${proxy_args[@]}"}
        proxy_pid=$pid
        start fault-relay --upstream "127.0.0.1:$port" --max-seconds 120 --verbose "$@"
        relay_pid=$pid relay_log=$log entry=$port
    fi
    echo_fds=$(fd_count "$echo_pid")
    proxy_fds=$(fd_count "$proxy_pid")
}

# end_chain: both servers back to their descriptor counts (within 10 s), then the relay, the
# proxy and echo-server stopped, each exiting 0.
end_chain() {
    wait_fds tcp-proxy "$proxy_pid" "$proxy_fds" 10
    wait_fds echo-server "$echo_pid" "$echo_fds" 10
    stop fault-relay "$relay_pid"
    stop tcp-proxy "$proxy_pid"
    stop echo-server "$echo_pid"
}

# relay_says TEXT: the relay's log has a line with TEXT (what it did, or its totals).
relay_says() { grep -q -- "$1" "$relay_log" || fail "the relay did not report '$1': $(tail -n 5 "$relay_log" | tr '\n' '|')"; }

echo "engine: ${TORUS_ENGINE:-automatic}"

# =============================================================================================
section "tcp-proxy -> echo-server: delay and trickle"
for where in upstream client; do
    proxy_chain "$where" --delay 20
    out=$(client echo --port "$entry" --bytes $((1024 * 1024)) --min-seconds 0.04) || fail "delay 20 ms, relay at $where: $out"
    end_chain
    ok "tcp-proxy, --delay 20 at $where: 1 MiB echoed intact, then end of stream after the client's half-close ($out)"
done

proxy_chain upstream --trickle 512:1 --seed 11
out=$(client echo --port "$entry" --bytes $((1024 * 1024))) || fail "trickle 512:1 upstream: $out"
end_chain
ok "tcp-proxy, --trickle 512:1 at upstream (writes of 1-512 B, 1 per ms): 1 MiB echoed intact ($out)"

proxy_chain client --trickle 1:1
out=$(client echo --port "$entry" --bytes 2048) || fail "trickle 1:1 at client: $out"
end_chain
relay_says "up 2048 B in 2048 writes"
ok "tcp-proxy, --trickle 1:1 at client (one byte per segment): 2 KiB echoed intact ($out)"

head -c $((1024 * 1024)) /dev/urandom >"$work/payload"
proxy_chain client --delay 20
timeout 60 "$bin/echo-client" --port "$entry" <"$work/payload" >"$work/echoed" || fail "echo-client through --delay 20 failed"
cmp -s "$work/payload" "$work/echoed" || fail "echo-client through --delay 20: different bytes back for 1 MiB"
end_chain
ok "echo-client -> --delay 20 -> tcp-proxy -> echo-server: 1 MiB echoed intact"

# =============================================================================================
section "tcp-proxy -> echo-server: half-closes injected by the relay"
# up: echo-server sees the end of stream after 100,000 bytes; it echoes them and closes, the
# proxy passes that on, and the client gets exactly those bytes, then end of stream (what it
# sends after them is dropped by the relay).
proxy_chain upstream --half-close up:100000
out=$(client echo --port "$entry" --bytes 262144 --expect 100000) || fail "half-close up:100000 at upstream: $out"
end_chain
relay_says "half-closes: .* 1 injected"
ok "tcp-proxy, --half-close up:100000 at upstream: the end reached echo-server through the proxy, exactly 100000 bytes back, then end of stream ($out)"

# down: the proxy sees the upstream end after 100,000 echoed bytes and passes it to the client,
# while the client's remaining bytes still go up (and their echo is dropped by the relay).
proxy_chain upstream --half-close down:100000
out=$(client echo --port "$entry" --bytes 262144 --expect 100000) || fail "half-close down:100000 at upstream: $out"
end_chain
ok "tcp-proxy, --half-close down:100000 at upstream: exactly 100000 bytes back, then end of stream; both connections closed once the client ended ($out)"

proxy_chain client --half-close up:100000
out=$(client echo --port "$entry" --bytes 262144 --expect 100000) || fail "half-close up:100000 at client: $out"
end_chain
ok "tcp-proxy, --half-close up:100000 at client: the proxy passed the end on, exactly 100000 bytes back, then end of stream ($out)"

# =============================================================================================
section "tcp-proxy -> echo-server: cuts at a random byte"
# Four cut connections per relay (each at its own byte, drawn from the seed), then a fifth one
# that the relay leaves alone (--first 4): it must be served.
cut_runs=(
    "upstream --cut any:1048576 --seed 21"
    "upstream --cut up:262144 --cut-reset --seed 22"
    "client --cut down:262144 --cut-reset --seed 23"
    "client --cut any:1048576 --seed 24"
)
for run in "${cut_runs[@]}"; do
    read -r -a words <<<"$run"
    proxy_chain "${words[@]}" --first 4
    ends=()
    for n in 1 2 3 4; do
        out=$(client cut --port "$entry" --bytes $((1024 * 1024)) --seed "$n" --timeout 10) || fail "${run}: connection $n: $out"
        ends+=("$(short_end "$out")")
    done
    wait_fds tcp-proxy "$proxy_pid" "$proxy_fds" 10
    proxy_wait=$waited
    wait_fds echo-server "$echo_pid" "$echo_fds" 10
    out=$(client echo --port "$entry" --bytes 65536) || fail "${run}: the connection after the cuts: $out"
    end_chain
    relay_says "4 cut"
    ok "tcp-proxy, ${run}: 4 cuts seen by the client ($(joined "${ends[@]}")); descriptors back (proxy in ${proxy_wait}s); the next connection echoed"
done

# =============================================================================================
section "tcp-proxy -> echo-server: a stalled direction, idle timeouts of 2 s"
echo_args=(--idle-timeout 2) proxy_args=(--idle-timeout 2)
# The client sends 1 MiB (more than the buffers on the way hold, so that writes are left
# pending in both servers); its connection must end 1.5-8 s after it started (an idle timeout,
# not something else), the servers' descriptors must be back within 5 s more, and the next
# connection (which the relay leaves alone) must be served.
for run in "upstream down" "upstream up" "client up"; do
    read -r where direction <<<"$run"
    proxy_chain "$where" --stall "$direction" --first 1
    out=$(client stall --port "$entry" --bytes $((1024 * 1024)) --timeout 8 --min-seconds 1.5) || fail "stall $direction at $where: $out"
    wait_fds tcp-proxy "$proxy_pid" "$proxy_fds" 5
    proxy_wait=$waited
    wait_fds echo-server "$echo_pid" "$echo_fds" 5
    echo_wait=$waited
    next=$(client echo --port "$entry" --bytes 65536) || fail "stall $direction at $where: the next connection: $next"
    end_chain
    ok "tcp-proxy, --stall $direction at $where: an idle timeout ended the client's connection ($out); descriptors back (proxy in ${proxy_wait}s, echo-server in ${echo_wait}s more); the next connection echoed"
done
# A stall shorter than the timeouts only delays: everything comes back.
echo_args=(--idle-timeout 3) proxy_args=(--idle-timeout 3)
proxy_chain upstream --stall down:1
out=$(client echo --port "$entry" --bytes 65536 --min-seconds 0.9) || fail "stall down:1 at upstream: $out"
end_chain
ok "tcp-proxy, --stall down:1 at upstream (idle timeouts 3 s): 64 KiB echoed intact after the stall ($out)"
echo_args=() proxy_args=()

# Only tcp-proxy has an idle timeout, the upstream stalls up, and the client sends 4 MiB, so
# that the proxy's write toward the upstream stays pending. The idle timeout closes the
# client's connection; the pending write to the upstream ends on its own timeout (the proxy
# gives upstream writes its idle timeout), which closes the upstream connection too. (Before
# that, the relay's pumps waited for ever: one in that write, the other in a read from the
# upstream, neither woken by the client's close.)
section "tcp-proxy: an idle-closed client's upstream connection is closed too"
proxy_args=(--idle-timeout 2)
proxy_chain upstream --stall up
out=$(client stall --port "$entry" --bytes $((4 * 1024 * 1024)) --timeout 8 --min-seconds 1.5) || fail "stall up, proxy idle timeout only: $out"
wait_fds tcp-proxy "$proxy_pid" "$proxy_fds" 10
proxy_wait=$waited
stop fault-relay "$relay_pid"
wait_fds echo-server "$echo_pid" "$echo_fds" 10
stop tcp-proxy "$proxy_pid"
stop echo-server "$echo_pid"
ok "tcp-proxy, --stall up at upstream, only the proxy's 2 s idle timeout: the client's connection ended ($out), the upstream one ${proxy_wait}s later"
proxy_args=()

# =============================================================================================
# tls_chain RELAY_ARGS...: echo-server over TLS with a fault-relay in front. Sets entry,
# echo_pid, echo_port, echo_fds, relay_pid, relay_log.
tls_chain() {
    start echo-server "${tls_args[@]}"
    echo_pid=$pid echo_port=$port
    start fault-relay --upstream "127.0.0.1:$port" --max-seconds 120 --verbose "$@"
    relay_pid=$pid relay_log=$log entry=$port
    echo_fds=$(fd_count "$echo_pid")
}

end_tls_chain() {
    wait_fds echo-server "$echo_pid" "$echo_fds" 10
    stop fault-relay "$relay_pid"
    stop echo-server "$echo_pid"
}

section "echo-server over TLS: a handshake trickled one byte per 2 ms"
tls_chain --trickle 1:2
client echo --port "$entry" --tls "$ca" --bytes 512 >"$work/tls13.out" &
tls13=$!
client echo --port "$entry" --tls "$ca" --tls12 --bytes 512 >"$work/tls12.out" &
tls12=$!
wait "$tls13" || fail "TLS 1.3 trickled: $(cat "$work/tls13.out")"
wait "$tls12" || fail "TLS 1.2 trickled: $(cat "$work/tls12.out")"
end_tls_chain
ok "TLS, --trickle 1:2: TLS 1.3 handshake and 512 B echo ($(cat "$work/tls13.out")), TLS 1.2 ($(cat "$work/tls12.out"))"

section "echo-server over TLS: handshakes cut at a random byte"
# Python's handshakes, in bytes relayed before the client has all it needs: TLS 1.3 a
# ClientHello of 517 and a server flight of about 840; TLS 1.2 about 180 up, 690 down, 90 up,
# 240 down. So up:150 falls in the ClientHello, down:800 in what the server sends before its
# Finished, any:1100 anywhere before the client could finish, on either version (connections
# alternate): every client's handshake must fail, the server must give back each descriptor
# and serve the fifth connection, which the relay leaves alone.
for run in "--cut up:150 --seed 31" "--cut down:800 --cut-reset --seed 32" "--cut any:1100 --seed 33"; do
    read -r -a words <<<"$run"
    tls_chain "${words[@]}" --first 4
    ends=()
    for n in 1 2 3 4; do
        version=(); ((n % 2)) && version=(--tls12)
        out=$(client cut --port "$entry" --tls "$ca" ${version[@]+"${version[@]}"} --bytes 512 --timeout 10) || fail "TLS ${run}: connection $n: $out"
        ends+=("${out#*then handshake failed: }")
        ends[-1]=${ends[-1]%, after *}
    done
    wait_fds echo-server "$echo_pid" "$echo_fds" 10
    out=$(client echo --port "$entry" --tls "$ca" --bytes 65536) || fail "TLS ${run}: the connection after the cuts: $out"
    end_tls_chain
    relay_says "4 cut"
    ok "TLS, ${run}: 4 handshakes failed ($(tally "${ends[@]}")); descriptors back; the next TLS client echoed"
done

section "echo-server over TLS: stalled handshakes (the 10 s handshake timeout)"
# Two relays, one stalling up (the ClientHello never arrives), one down (the server's flight
# never leaves); both connections must be closed by the server within 15 s. The first only
# hears it: the relay passes the server's end of stream down; behind the stalled direction the
# second client hears nothing, as across a real stall.
tls_chain --stall up --first 1
up_entry=$entry up_relay=$relay_pid up_log=$relay_log stall_pid=$echo_pid stall_fds=$echo_fds
start fault-relay --upstream "127.0.0.1:$echo_port" --max-seconds 120 --verbose --stall down --first 1
down_entry=$port down_relay=$pid
stall_begin=$(now_us)
client stall --port "$up_entry" --tls "$ca" --timeout 16 --min-seconds 9 >"$work/stall-up.out" &
stall_up=$!
client stall --port "$down_entry" --tls "$ca" --timeout 16 --allow-silence >"$work/stall-down.out" &
stall_down=$!
wait_fds echo-server "$stall_pid" $((stall_fds + 2)) 5
wait_fds echo-server "$stall_pid" "$stall_fds" 16
closed_after=$(seconds_since "$stall_begin")
((${closed_after%.*} < 15)) || fail "the stalled handshakes were closed after ${closed_after}s, not within 15 s"
wait "$stall_up" || fail "TLS stall up: $(cat "$work/stall-up.out")"
kill -TERM "$stall_down" 2>/dev/null || true
wait "$stall_down" 2>/dev/null || true
for relay_entry in "$up_entry" "$down_entry"; do
    out=$(client echo --port "$relay_entry" --tls "$ca" --bytes 65536) || fail "TLS after the stalls: $out"
done
stop fault-relay "$down_relay"
relay_pid=$up_relay relay_log=$up_log echo_pid=$stall_pid echo_fds=$stall_fds
end_tls_chain
ok "TLS, --stall up and --stall down: both handshakes closed by the server within ${closed_after}s; the up client got its end ($(cat "$work/stall-up.out")); the next TLS clients echoed"

section "echo-server over TLS: delay"
tls_chain --delay 20
timeout 60 "$bin/echo-client" --port "$entry" --tls --ca "$ca" --server-name localhost <"$work/payload" >"$work/echoed" \
    || fail "echo-client --tls through --delay 20 failed"
cmp -s "$work/payload" "$work/echoed" || fail "echo-client --tls through --delay 20: different bytes back for 1 MiB"
out=$(client echo --port "$entry" --tls "$ca" --bytes $((1024 * 1024))) || fail "TLS through --delay 20: $out"
end_tls_chain
ok "TLS, --delay 20: 1 MiB echoed intact to echo-client --tls and to Python's ssl ($out)"

section "done in $((SECONDS - started))s (engine ${TORUS_ENGINE:-automatic})"
