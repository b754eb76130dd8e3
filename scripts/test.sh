#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies, then
#   1. a -Werror release build and every ctest test (unit + integration),
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer,
#   3. a short libFuzzer smoke run of every fuzz target (SG_FUZZ_SECONDS, default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
jobs=$(nproc)

echo "== release build (-Werror), all tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSG_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure

echo "== ASan + UBSan build, all tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSG_WERROR=ON -DSG_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure

echo "== fuzz smoke (${SG_FUZZ_SECONDS:-30} s per target)"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DSG_FUZZ=ON -DSG_TESTS=OFF -DSG_WERROR=ON \
    -DSG_FUZZ_SECONDS="${SG_FUZZ_SECONDS:-30}" >/dev/null
cmake --build build-fuzz -j "$jobs"
ctest --test-dir build-fuzz --output-on-failure
