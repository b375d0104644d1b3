#!/usr/bin/env bash
# The test command: installs what building needs when it is missing (scripts/bootstrap.sh),
# then runs the whole test suite. Extra arguments go to `swift test`:
#
#   ./scripts/test.sh
#   ./scripts/test.sh --filter ConnectionTests
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PATH=$(scripts/bootstrap.sh --print-path)
export PATH

exec swift test "$@"
