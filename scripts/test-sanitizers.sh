#!/usr/bin/env bash
# Runs the whole test suite under ThreadSanitizer and/or AddressSanitizer (with
# LeakSanitizer), each in a build of its own:
#
#   scripts/test-sanitizers.sh [thread|address|all]        (all by default)
#
# Each sanitizer builds into its own scratch directory (.build-tsan, .build-asan), so neither
# throws away the other's build or the normal .build. A run fails when swift test fails or
# when the sanitizer reported anything, in the test process or in a child it started (the
# exit tests and the example programs run by the tests are built with the same sanitizer):
# every report goes to a file under <scratch>/sanitizer-reports/, and this script prints them.
# Suppressions, each explained, are in scripts/sanitizers/.
#
# Each run is bounded by `timeout` (TORUS_SANITIZER_TIMEOUT, 12m by default). On the 2-core
# development machine a run from a clean scratch directory took 1m45s for thread (72 s build,
# 30 s tests) and 2m50s for address (136 s build, 18 s tests), and up to 2.5 and 11.5 minutes
# while other builds shared the cores; a rebuild after a small change takes seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

PATH=$(scripts/bootstrap.sh --print-path)
export PATH

usage() { echo "usage: scripts/test-sanitizers.sh [thread|address|all]" >&2; }
say() { printf 'test-sanitizers: %s\n' "$*"; }

which=${1:-all}
case $which in
    thread) sanitizers=(thread) ;;
    address) sanitizers=(address) ;;
    all) sanitizers=(thread address) ;;
    *) usage; exit 2 ;;
esac
limit=${TORUS_SANITIZER_TIMEOUT:-12m}

# Runs swift test under sanitizer $1; returns non-zero on a failure or a report.
run() {
    local sanitizer=$1 scratch reports
    case $sanitizer in
        thread) scratch=.build-tsan ;;
        address) scratch=.build-asan ;;
    esac
    reports="$root/$scratch/sanitizer-reports"
    rm -rf "$reports"
    mkdir -p "$reports"

    # log_path: reports go to files (one per process, named by pid), so that a child's report
    # is kept even where the test that started the child shows only its exit status.
    # halt_on_error=0 (TSan's default) lets a run report every race, not just the first; the
    # process still exits with status 66 if it reported any.
    local -a environment=(
        "TSAN_OPTIONS=log_path=$reports/tsan halt_on_error=0 second_deadlock_stack=1"
        "ASAN_OPTIONS=log_path=$reports/asan detect_leaks=1"
        "LSAN_OPTIONS=suppressions=$root/scripts/sanitizers/lsan.supp print_suppressions=0"
    )

    say "swift test --sanitize=$sanitizer --scratch-path $scratch (at most $limit)"
    local started=$SECONDS status
    # The linker's "Cannot export local symbol '__asan_…'" warnings (ld.gold, a screenful per
    # executable under address) say nothing about Torus; the rest of the output is shown.
    set +e
    env "${environment[@]}" timeout -k 30s "$limit" \
        swift test --sanitize="$sanitizer" --scratch-path "$scratch" 2>&1 \
        | grep -v "ld.gold: warning: Cannot export local symbol '__asan"
    status=${PIPESTATUS[0]}
    set -e
    local elapsed=$((SECONDS - started))

    local files=()
    mapfile -t files < <(find "$reports" -type f | sort)
    if ((${#files[@]} > 0)); then
        say "$sanitizer: ${#files[@]} process(es) reported:"
        for file in "${files[@]}"; do
            printf '\n----- %s -----\n' "$file"
            cat "$file"
        done
    fi
    if ((status == 124 || status == 137)); then
        say "$sanitizer: TIMED OUT after ${elapsed}s (limit $limit)"
        return 1
    fi
    if ((status != 0 || ${#files[@]} > 0)); then
        say "$sanitizer: FAILED after ${elapsed}s (swift test exit status $status, ${#files[@]} report file(s))"
        return 1
    fi
    say "$sanitizer: clean, ${elapsed}s"
}

failed=()
for sanitizer in "${sanitizers[@]}"; do
    run "$sanitizer" || failed+=("$sanitizer")
done
if ((${#failed[@]} > 0)); then
    say "FAILED: ${failed[*]}"
    exit 1
fi
say "all clean: ${sanitizers[*]}"
