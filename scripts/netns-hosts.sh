#!/usr/bin/env bash
# The project's own test hosts: two network namespaces on this machine, a client and a
# server, joined by a veth pair, with addresses of their own (nothing outside this machine is
# ever a target). Tests inject faults with nftables inside the server namespace.
#
#   scripts/netns-hosts.sh up        creates them (replacing any left from an earlier run)
#   scripts/netns-hosts.sh down      removes them (and the veth pair with them)
#   scripts/netns-hosts.sh status    prints them, or exits 1 when they are not up
#
#   client namespace  torus-client   torus-c0  10.203.0.1/24  fd00:203::1/64
#   server namespace  torus-server   torus-s0  10.203.0.2/24  fd00:203::2/64
#
# Needs root (CI runs as root) and iproute2. Bounded: every step is one ip command.
set -euo pipefail

readonly client=torus-client server=torus-server
readonly client_v4=10.203.0.1 server_v4=10.203.0.2
readonly client_v6=fd00:203::1 server_v6=fd00:203::2

say() { printf 'netns-hosts: %s\n' "$*" >&2; }

down() {
    ip netns del "$client" 2>/dev/null || true
    ip netns del "$server" 2>/dev/null || true
}

up() {
    [[ $(id -u) == 0 ]] || { say "needs root (network namespaces)"; exit 1; }
    command -v ip >/dev/null || { say "needs iproute2 (ip)"; exit 1; }
    down
    ip netns add "$client"
    ip netns add "$server"
    ip link add torus-c0 netns "$client" type veth peer name torus-s0 netns "$server"
    ip -n "$client" addr add "$client_v4/24" dev torus-c0
    ip -n "$server" addr add "$server_v4/24" dev torus-s0
    # nodad: the IPv6 addresses are usable at once, not after duplicate address detection.
    ip -n "$client" -6 addr add "$client_v6/64" dev torus-c0 nodad
    ip -n "$server" -6 addr add "$server_v6/64" dev torus-s0 nodad
    for namespace in "$client" "$server"; do ip -n "$namespace" link set lo up; done
    ip -n "$client" link set torus-c0 up
    ip -n "$server" link set torus-s0 up
    # The link is up once both ends are (a veth reports LOWER_UP then).
    ip -n "$client" link show torus-c0 | grep -q LOWER_UP || { say "the veth link did not come up"; down; exit 1; }
    say "up: $client ($client_v4, $client_v6) <-> $server ($server_v4, $server_v6)"
}

status() {
    ip netns list | grep -qw "$client" && ip netns list | grep -qw "$server" || { say "not up"; exit 1; }
    ip -n "$client" -br addr show torus-c0
    ip -n "$server" -br addr show torus-s0
}

case ${1-} in
    up) up ;;
    down) down; say "down" ;;
    status) status ;;
    *) echo "usage: scripts/netns-hosts.sh up|down|status" >&2; exit 2 ;;
esac
