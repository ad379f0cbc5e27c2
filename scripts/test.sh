#!/usr/bin/env bash
# The whole test suite: unit tests, then the integration suites (tests/), which start the
# real server and run real programs in the real sandbox. Needs root (boxes map to
# unprivileged host uids and get their own cgroups).
#
# Every test binary runs to the end (--no-fail-fast): one failing suite never hides the
# results of the others. cargo's output stays on screen; a summary follows, one line per test
# binary, then a last line `N passed, N failed, N skipped`. Exits non-zero if anything failed.
#
# Arguments replace `--workspace`, to run part of the suite the same way:
#   scripts/test.sh -p coderun --test api
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "test: run as root (the sandbox needs it)" >&2
    exit 1
fi
scripts/setup.sh

log=$(mktemp)
started=$(mktemp)
trap 'rm -f "$log" "$started"' EXIT
(($#)) || set -- --workspace
cargo_status=0
cargo test --locked --no-fail-fast "$@" 2>&1 | tee "$log" || cargo_status=$?

echo
echo "== test summary =="
# cargo announces each binary ("Running tests/api/main.rs (target/debug/deps/api-…)",
# "Running unittests src/lib.rs (target/debug/deps/coderun_api-…)", "Doc-tests coderun_api");
# the binary ends with "test result: ok. 7 passed; 0 failed; 2 ignored; …". A binary that
# prints no result line crashed (or was killed): it counts as one failure.
summary=$(awk -v cargo_status="$cargo_status" '
    function close_binary() {
        if (name != "" && !done) {
            printf "  %-48s CRASHED (no test result)\n", name
            failed++
        }
        name = ""
    }
    /^ *Running / {
        close_binary()
        line = $0
        sub(/^ *Running /, "", line)
        bin = line
        sub(/.*\(/, "", bin); sub(/\)$/, "", bin); sub(/.*\//, "", bin); sub(/-[0-9a-f]+$/, "", bin)
        src = line
        sub(/ \(.*$/, "", src); sub(/^(\.\.\/)+/, "", src)
        name = bin " (" src ")"
        done = 0
        next
    }
    /^ *Doc-tests / {
        close_binary()
        name = $2 " (doc-tests)"
        done = 0
        next
    }
    /^test result: / && name != "" {
        p = f = i = 0
        for (k = 1; k < NF; k++) {
            word = $(k + 1)
            sub(/;$/, "", word)
            if (word == "passed") p = $k
            if (word == "failed") f = $k
            if (word == "ignored") i = $k
        }
        printf "  %-48s %5d passed, %d failed%s\n", name, p, f, (i > 0 ? ", " i " skipped" : "")
        passed += p; failed += f; skipped += i
        done = 1
        next
    }
    END {
        close_binary()
        if (cargo_status != 0 && failed == 0) {
            print "  cargo test exited with " cargo_status " before any test failed (build error?): see above"
        }
        printf "%d passed, %d failed, %d skipped\n", passed, failed, skipped
    }
' "$log")
sed '$d' <<<"$summary"

# Nothing of the tests may stay in the temp dir (shown, not counted: another run on the same
# machine at the same time could have made what is listed).
tmp=${TMPDIR:-/tmp}
left=$(find "$tmp" -maxdepth 1 -name 'coderun-*' -newer "$started" 2>/dev/null | sort)
if [ -z "$left" ]; then
    echo "  left in $tmp by the tests: nothing"
else
    echo "  left in $tmp by the tests (or by another run at the same time):"
    printf '    %s\n' $left
fi
tail -n 1 <<<"$summary"

if [ "$cargo_status" != 0 ]; then
    exit 1
fi
