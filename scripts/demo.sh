#!/usr/bin/env bash
# Builds the echo server example in release mode and runs it on loopback (127.0.0.1:7000),
# installing what building needs when it is missing (scripts/bootstrap.sh). Extra arguments
# go to the server and override the defaults:
#
#   ./scripts/demo.sh
#   ./scripts/demo.sh --port 7001 --threads 2
#   ./scripts/demo.sh --tls          # over TLS, with throwaway certificates in .build/demo-certs
#
# With --tls it makes a throwaway CA and server certificate (scripts/make-test-certs.sh) and
# serves TLS on the same port; talk to it with echo-client --tls --ca .build/demo-certs/ca.pem,
# or openssl s_client. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PATH=$(scripts/bootstrap.sh --print-path)
export PATH

swift build -c release --product echo-server
server="$(swift build -c release --show-bin-path)/echo-server"

# The server takes the last value given for an option, so extra arguments win.
host=127.0.0.1
port=7000
tls=false
args=()
for argument in "$@"; do
    if [[ $argument == --tls ]]; then tls=true; else args+=("$argument"); fi
done
for ((i = 0; i + 1 < ${#args[@]}; i++)); do
    case ${args[i]} in
        --host) host=${args[i + 1]} ;;
        --port) port=${args[i + 1]} ;;
    esac
done
client_args=""
[[ $host != 127.0.0.1 ]] && client_args+=" --host $host"
[[ $port != 7000 && $port != 0 ]] && client_args+=" --port $port"
tls_args=()
if $tls; then
    certs=$PWD/.build/demo-certs
    [[ -f $certs/server.pem ]] || scripts/make-test-certs.sh "$certs" >/dev/null
    tls_args=(--tls-cert "$certs/server.pem" --tls-key "$certs/server.key")
    client_args+=" --tls --ca $certs/ca.pem --server-name localhost"
fi
if [[ $port == 0 ]]; then
    echo "Starting the echo server on $host (port 0: it prints the port it got). Talk to it with: swift run -c release echo-client$client_args --port PORT   (Ctrl-C stops it)"
elif $tls; then
    echo "Starting the echo server over TLS on $host:$port. Talk to it with: swift run -c release echo-client$client_args   or: openssl s_client -connect $host:$port -CAfile $certs/ca.pem   (Ctrl-C stops it)"
else
    echo "Starting the echo server on $host:$port. Talk to it with: nc $host $port   or: swift run -c release echo-client$client_args   (Ctrl-C stops it)"
fi

exec "$server" --host 127.0.0.1 --port 7000 "${tls_args[@]}" "${args[@]}"
