#!/usr/bin/env bash
# What scrubbing costs: ns per representative event (median of 5 runs), instructions per
# event under callgrind (deterministic: the figure to compare), for an ordinary event and
# for the same event with a phone number in its free text; and the worst case per 64 KB
# field for inputs built against each detector.
#   tests/bench/scrub_cost.sh [build-dir]      (default: build-bench, a Release build)
set -euo pipefail
cd "$(dirname "$0")/../.."
b=${1:-build-bench}
cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$b" -j2 --target bench_scrub_cost >/dev/null
"$b/tests/bench_scrub_cost" 20000 worst
"$b/tests/bench_scrub_cost" 20000 phone
n=500
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for kind in ordinary phone; do
    valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect=measured \
        "$b/tests/bench_scrub_cost" "$n" "$kind" >/dev/null 2>&1
    # measured() runs 5 times over n events
    ir=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    echo "instructions per event, $kind: $((ir / (5 * n)))"
done
