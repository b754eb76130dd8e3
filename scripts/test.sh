#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies, then
#   1. a gcc Release build (-O3 -DNDEBUG, where gcc warns most) with -Werror, and every ctest
#      test (unit + integration),
#   2. a clang build under AddressSanitizer + UndefinedBehaviorSanitizer plus float-cast-overflow,
#      implicit-conversion and the rest of SG_SANITIZERS (CMakeLists.txt says which and why),
#      also -Werror, and every ctest test again; any finding aborts the program, so fails a test,
#   3. the same under gcc's ASan + UBSan (the two compilers' sanitizers catch different things),
#   4. a short libFuzzer smoke run of every fuzz target (SG_FUZZ_SECONDS, default 30).
# Each build names its C++ compiler beside its C compiler (src/rules/phone.cc is C++, and the
# sanitizer and fuzzer flags go to both): clang with clang++, gcc with g++.
# Stages 1-3 include the TCF differential test (diff.tcf_iab: npm ci of IAB's reference library
# into each build tree, then 4,000 generated strings; about 10 s a stage), which needs node and
# npm (packages.txt) and the npm registry.
# Stages 1-3 also run the browser tests in headless Chromium (tests/browser, about 25 s a stage)
# and the NATS JetStream tests against real nats-server nodes (a single node, and a 3-node
# cluster with two instances: about 100 s a stage).
# Each stage prints its duration; on the 2-core development machine the whole run takes about
# 27 minutes with the default SG_FUZZ_SECONDS (1,625 s in the last clean-clone run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
jobs=$(nproc)
fuzz_seconds="${SG_FUZZ_SECONDS:-30}"
start=$SECONDS

stage() {
    echo "== $* (at ${SECONDS}s)"
}

stage "gcc Release build (-Werror), all tests"
cmake -S . -B build-release -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
    -DCMAKE_BUILD_TYPE=Release -DSG_WERROR=ON >/dev/null
cmake --build build-release -j "$jobs"
ctest --test-dir build-release --output-on-failure

stage "clang ASan + UBSan build (-Werror), all tests"
cmake -S . -B build-san -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=Debug -DSG_WERROR=ON -DSG_SANITIZE=ON >/dev/null
cmake --build build-san -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-san --output-on-failure

stage "gcc ASan + UBSan build (-Werror), all tests"
cmake -S . -B build-gcc-san -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
    -DCMAKE_BUILD_TYPE=Debug -DSG_WERROR=ON -DSG_SANITIZE=ON >/dev/null
cmake --build build-gcc-san -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-gcc-san --output-on-failure

stage "fuzz smoke (${fuzz_seconds} s per target)"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DSG_FUZZ=ON \
    -DSG_TESTS=OFF -DSG_WERROR=ON -DSG_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
cmake --build build-fuzz -j "$jobs"
ctest --test-dir build-fuzz --output-on-failure

echo "== all passed in $((SECONDS - start)) s"
