#!/usr/bin/env bash
# The whole test suite: builds (warnings are errors); a bounded fuzz run of the
# readers (.ci/fuzz.sh); ctest in an AddressSanitizer + UndefinedBehaviorSanitizer
# build, then in the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh --no-run
jobs=$(nproc 2>/dev/null || echo 2)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$jobs}
# Always a cold PoCL kernel cache, as on a fresh machine: a warm cache on a
# developer's machine must never hide a failure that only a cold one shows.
POCL_CACHE_DIR=$(mktemp -d -t xm-pocl-cache.XXXXXX)
export POCL_CACHE_DIR
trap 'rm -rf "$POCL_CACHE_DIR"' EXIT

echo "== fuzzing (libFuzzer, clang: ${XM_FUZZ_SECONDS:-60} s a reader) =="
bash .ci/fuzz.sh

echo "== sanitizer build (ASan + UBSan) =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DXM_WERROR=ON -DXM_SANITIZE=ON -DXM_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j "$jobs"
# Leaks, out-of-bounds accesses and undefined behaviour all fail the run.
LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0 \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -LE slow

echo "== release build =="
ctest --test-dir build --output-on-failure -j "$jobs"
