#!/usr/bin/env bash
# Documentation check: builds the DocC documentation of the Torus and TorusTLS targets with
# every DocC warning (broken symbol or article link, wrong overload disambiguation, parameter
# documented that does not exist or missing from a documented list, ...) treated as an error,
# then checks that every public symbol declared in Sources/Torus and Sources/TorusTLS has a doc
# comment of its own. Exits non-zero on the first failure.
#
#   scripts/check-docs.sh
#
# Works in a fresh clone: SwiftPM fetches swift-docc-plugin (a dependency in Package.swift)
# and builds what it needs. Bounded in time: CHECK_DOCS_TIMEOUT (default 15m, in the syntax of
# timeout(1)) covers each target's documentation build. The archives are left in
# .build/plugins/Swift-DocC/outputs/Torus.doccarchive and TorusTLS.doccarchive.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'check-docs: %s\n' "$*"; }
fail() { printf 'check-docs: FAILED: %s\n' "$*" >&2; exit 1; }

# python3 reads the symbol graph for the undocumented-symbol check.
PATH=$(scripts/bootstrap.sh --print-path python3)
export PATH

limit=${CHECK_DOCS_TIMEOUT:-15m}
work=$(mktemp -d "${TMPDIR:-/tmp}/torus-check-docs.XXXXXX")
trap 'rm -rf "$work"' EXIT

# check_target NAME: the documentation of Sources/NAME, warnings as errors, and its public
# symbols' doc comments.
check_target() {
    local target=$1
    touch "$work/started-$target"
    say "swift package generate-documentation --target $target --warnings-as-errors (limit $limit)"
    local status=0
    timeout -k 30s "$limit" \
        swift package generate-documentation --target "$target" --warnings-as-errors \
        2>&1 | tee "$work/docc-$target.log" || status=${PIPESTATUS[0]}
    if [[ $status -eq 124 || $status -eq 137 ]]; then
        fail "the $target documentation build did not finish within $limit"
    elif [[ $status -ne 0 ]]; then
        fail "the $target documentation build failed (exit $status); see the errors above"
    fi
    # DocC's own warnings fail the build above; compiler warnings in the target's sources
    # (from the build the plugin runs) would only scroll by, so look for them too. (An
    # incremental build shows them only for files it recompiles; in a fresh clone that is
    # every file.)
    if grep -E "(^|/)Sources/$target/[^:]+:[0-9]+:[0-9]+: warning:" "$work/docc-$target.log"; then
        fail "the $target build behind the documentation has warnings (above)"
    fi

    # The symbol graph the plugin just extracted (the directory above NAME/ is the package's).
    local graph
    graph=$(find .build -path "*/extracted-symbols/*/$target/$target.symbols.json" -newer "$work/started-$target" -print -quit)
    [[ -n $graph ]] || fail "found no symbol graph for $target under .build after the documentation build"

    say "$target: public symbols without a doc comment of their own"
    python3 - "$graph" "$target" <<'PYTHON'
import json, sys

graph = json.load(open(sys.argv[1]))
module = sys.argv[2]
missing = []
for symbol in graph["symbols"]:
    uri = symbol.get("location", {}).get("uri", "")
    if f"/Sources/{module}/" not in uri:
        continue  # inherited from a protocol, or synthesized: nothing to write a comment on
    comment = symbol.get("docComment")
    # A comment that belongs to another module is one the symbol inherited from a protocol
    # requirement (Swift's `description`, `==`, AsyncSequence's `Element`...).
    own = comment is not None and comment.get("module", module) == module \
        and any(line["text"].strip() for line in comment["lines"])
    if not own:
        path = uri.split(f"/Sources/{module}/", 1)[1]
        line = symbol["location"]["position"]["line"] + 1
        name = ".".join(symbol["pathComponents"])
        missing.append(f"Sources/{module}/{path}:{line}: {symbol['kind']['displayName'].lower()} {name}")
for entry in sorted(missing):
    print(entry)
if missing:
    print(f"{len(missing)} public symbol(s) without a doc comment", file=sys.stderr)
    sys.exit(1)
print("none")
PYTHON
}

for target in Torus TorusTLS; do
    check_target "$target"
done
say "ok"
