#!/usr/bin/env bash
# Runs the fault tests (Tests/TorusTests/Faults) across a real link: makes the test hosts
# (scripts/netns-hosts.sh: a client and a server network namespace joined by veth), runs the
# test suite's FaultTests inside the client namespace (TORUS_FAULT_HOSTS=1 tells them they
# may), and removes the hosts afterwards, also on failure. Peers run in the server namespace;
# nftables there drops, black-holes and resets.
#
#   scripts/test-faults.sh           (as root; TORUS_ENGINE as for every test run)
#
# Installs iproute2, nftables, socat and python3 (the multicast peers) when missing. Bounded by timeout. Without root the
# hosts cannot be made: it says so and exits 1 (a plain `swift test` skips these tests and
# says why).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PATH=$(scripts/bootstrap.sh --print-path iproute2 nftables socat python3)
export PATH
[[ $(id -u) == 0 ]] || { echo "test-faults: needs root to make network namespaces" >&2; exit 1; }

# Built in the root namespace (the build needs nothing from the network, but keeps the test
# run's time for the tests).
timeout -k 10s 20m swift build --build-tests

trap 'scripts/netns-hosts.sh down' EXIT
scripts/netns-hosts.sh up
timeout -k 10s 10m ip netns exec torus-client env TORUS_FAULT_HOSTS=1 PATH="$PATH" \
    swift test --skip-build --filter 'FaultTests'
