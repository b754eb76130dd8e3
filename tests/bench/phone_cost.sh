#!/usr/bin/env bash
# Instructions per call of each phone_cost case (tests/bench/phone_cost.c), counted by
# valgrind --tool=callgrind, which the load of other processes does not change (wall-clock ns
# on a shared machine do). Each case runs twice, with LO and HI iterations; the difference of
# the two totals divided by HI - LO is the cost of one call, without start-up, metadata load
# and warm-up. Not a test: run it by hand (about 2 minutes).
#   tests/bench/phone_cost.sh [BIN=build-release/tests/phone_cost]
#   env: LO (200), HI (1200)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-build-release/tests/phone_cost}
LO=${LO:-200} HI=${HI:-1200}
[ -x "$BIN" ] || { echo "build first: cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release && cmake --build build-release -j2" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

irs() { # total instructions of one run: ITERATIONS NAME
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$BIN" "$1" 1 "$2" \
        2>"$tmp/err" >/dev/null
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$tmp/err"
}

printf '%-44s %14s\n' "case" "instr/call"
"$BIN" --list | while IFS= read -r name; do
    lo=$(irs "$LO" "$name")
    hi=$(irs "$HI" "$name")
    printf '%-44s %14d\n' "$name" $(( (hi - lo) / (HI - LO) ))
done
