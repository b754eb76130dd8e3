#!/usr/bin/env bash
# The TCF differential test: IAB's reference library (@iabtechlabtcf/core, from npm, pinned
# by package-lock.json) generates random valid TC strings and decodes them; scrubgate's
# decoder (tcf_diff, built with the tests) must agree on every one.
#
#   tests/tcf-diff/run.sh TCF_DIFF_BINARY WORK_DIR
#
# The library is installed with `npm ci` into WORK_DIR (the build tree), never into the
# source tree. SG_TCF_DIFF_COUNT (default 4000) and SG_TCF_DIFF_SEED (default 9) choose the
# strings; the same pair gives the same strings.
#
# Exit 77 (ctest reports the test as skipped) when node or npm is missing, except in CI
# (CI=true), where that is a failure: scripts/packages.txt lists both.
set -euo pipefail
bin="$1"
work="$2"
here="$(cd "$(dirname "$0")" && pwd)"
count="${SG_TCF_DIFF_COUNT:-4000}"
seed="${SG_TCF_DIFF_SEED:-9}"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if [ "${CI:-}" = true ]; then
            echo "tcf-diff: FAILED: $tool is not installed (scripts/deps.sh installs it)" >&2
            exit 1
        fi
        echo "tcf-diff: SKIPPED: $tool is not installed; the TCF differential test did not run" \
            "(install nodejs and npm: scripts/deps.sh)" >&2
        exit 77
    fi
done

mkdir -p "$work"
# Install (again) only when the pinned lock file changed since the last install here.
if ! cmp -s "$here/package-lock.json" "$work/package-lock.json" ||
    [ ! -f "$work/node_modules/@iabtechlabtcf/core/package.json" ]; then
    cp "$here/package.json" "$here/package-lock.json" "$work/"
    echo "tcf-diff: npm ci in $work"
    if ! (cd "$work" && npm ci --no-audit --no-fund --loglevel=error); then
        echo "tcf-diff: FAILED: npm ci could not install @iabtechlabtcf/core" >&2
        exit 1
    fi
fi

start=$SECONDS
NODE_PATH="$work/node_modules" node "$here/gen.cjs" "$count" "$seed" >"$work/strings.jsonl"
"$bin" <"$work/strings.jsonl"
echo "tcf-diff: seed $seed, $((SECONDS - start)) s; the strings are in $work/strings.jsonl"
