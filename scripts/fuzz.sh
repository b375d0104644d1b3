#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers (libFuzzer, with AddressSanitizer): SocketAddress,
# the framing helpers (BufferedReader), the examples' HTTP/1.1 and RESP decoders, and
# TorusTLS's handling of TLS records. The fuzz targets are the package in Fuzz/ (each checks
# properties of its own: a parsed address prints to text that parses back to it; copying and
# lending reads agree and respect limits; a request or command cut at any byte decodes as when
# it arrives whole; hostile bytes end a TLS server session with a TLSError or a wait for more,
# and TLS records cut anywhere deliver the plaintext sent, a tampered record never).
#
#   scripts/fuzz.sh [--time S] [--target NAME]      (60 s per target by default, all targets)
#
# Each run starts from the committed seeds in Fuzz/Corpus/NAME (every seed is run first, so a
# crash's input added there stays a regression test) and writes what it finds to a temporary
# corpus, not to the committed one. A crash, a failed check or a timeout fails the script; the
# input is copied to Fuzz/crashes/ (not committed) and its path printed: fix the bug, then add
# the input to Fuzz/Corpus/NAME.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=60
targets=(FuzzSocketAddress FuzzFraming FuzzHTTP FuzzRESP FuzzTLSRecords)
while (($# > 0)); do
    case $1 in
        --time) seconds=${2:?--time needs a value}; shift ;;
        --target) targets=("${2:?--target needs a value}"); shift ;;
        *) echo "usage: scripts/fuzz.sh [--time S] [--target NAME]" >&2; exit 2 ;;
    esac
    shift
done

PATH=$(scripts/bootstrap.sh --print-path)
export PATH

echo "fuzz: building Fuzz/ with -sanitize=fuzzer,address (release)"
timeout -k 10s 20m swift build --package-path Fuzz -c release -Xswiftc -sanitize=fuzzer,address
bin=$(swift build --package-path Fuzz -c release --show-bin-path)

# libFuzzer and AddressSanitizer print the stack of a failed check themselves; Swift's own
# backtracer, which a trap would start, trips over AddressSanitizer and can outlive the fuzzer.
export SWIFT_BACKTRACE=enable=no

work=$(mktemp -d "${TMPDIR:-/tmp}/torus-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=()
for target in "${targets[@]}"; do
    mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
    echo "fuzz: $target for ${seconds}s (seeds: $(ls "Fuzz/Corpus/$target" | wc -l))"
    status=0
    # -timeout: an input that takes over 10 s is a hang; -rss_limit_mb bounds memory.
    timeout -k 10s $((seconds + 120)) "$bin/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="$work/$target/artifacts/" -print_final_stats=1 \
        "$work/$target/corpus" "Fuzz/Corpus/$target" >"$work/$target/log" 2>&1 || status=$?
    grep -E '^(#[0-9]+[[:space:]]+DONE|Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$work/$target/log" || true
    if ((status != 0)) || [[ -n $(ls -A "$work/$target/artifacts") ]]; then
        tail -n 40 "$work/$target/log"
        mkdir -p Fuzz/crashes
        cp "$work/$target/artifacts/"* Fuzz/crashes/ 2>/dev/null || true
        echo "fuzz: $target FAILED (exit $status); inputs in Fuzz/crashes/: $(ls "$work/$target/artifacts" | tr '\n' ' ')" >&2
        failed+=("$target")
    else
        echo "fuzz: $target ok ($(ls "$work/$target/corpus" | wc -l) new inputs found)"
    fi
done
((${#failed[@]} == 0)) || { echo "fuzz: FAILED: ${failed[*]}" >&2; exit 1; }
echo "fuzz: every target ran ${seconds}s without a finding"
