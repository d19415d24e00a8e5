#!/usr/bin/env bash
# The whole test suite: builds (warnings are errors); a bounded fuzz run of the
# readers (.ci/fuzz.sh); ctest in an AddressSanitizer + UndefinedBehaviorSanitizer
# build, in the release build, in a clang build (gcc builds the others) and in a
# build without OpenCL, and xmargin run under mpirun in an MPI build; then the
# examples against an installed library.
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
# intercept_tls_get_addr=0: GCC 12's sanitizer runtime (fixed after GCC 13 /
# LLVM 16) takes a dynamic TLS block that happens to start 16 bytes into a
# page for a glibc < 2.25 header and reads before it, and LeakSanitizer's
# tracer then dies at exit ("Tracer caught signal 11", no leak reported):
# PoCL's threads made that a flake of OpenCL runs (reproduced on
# py_test_reference_collateral, XM_TEST_SEED=931585161: fails without the
# flag, passes with it).
LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0 \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:intercept_tls_get_addr=0 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -LE slow

echo "== release build =="
ctest --test-dir build --output-on-failure -j "$jobs"

# The same sources must build with clang, warnings as errors, and pass the same
# tests: the generator's golden hash (tests/test_generate.c) is one value for
# both compilers. (No test is labelled slow today: -LE slow runs them all.)
echo "== clang build =="
if [ -f build-clang/CMakeCache.txt ] && ! grep -Eq '^CMAKE_C_COMPILER:[A-Z]+=.*clang[^/]*$' build-clang/CMakeCache.txt; then
  echo "build-clang/ was configured with another compiler: reconfiguring it with clang"
  rm -f build-clang/CMakeCache.txt
fi
CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXM_WERROR=ON -DXM_BUILD_BENCH=OFF >/dev/null
cmake --build build-clang -j "$jobs"
ctest --test-dir build-clang --output-on-failure -j "$jobs" -LE slow

# Without OpenCL at build time: only the cpu backend, no OpenCL or CLBlast
# library linked, the OpenCL tests reported as skipped.
echo "== build without OpenCL (XM_WITH_OPENCL=OFF) =="
cmake -S . -B build-noocl -DXM_WITH_OPENCL=OFF -DXM_WERROR=ON -DXM_BUILD_BENCH=OFF >/dev/null
cmake --build build-noocl -j "$jobs"
if ldd build-noocl/libxmargin.so build-noocl/xmargin | grep -Ei 'libOpenCL|libclblast'; then
  echo "FAIL: the XM_WITH_OPENCL=OFF build links OpenCL"
  exit 1
fi
ctest --test-dir build-noocl --output-on-failure -j "$jobs"

# Under mpirun (XM_WITH_MPI=ON): Open MPI and parallel HDF5 installed only
# now, so that every build above ran without them; the split runs bit for bit
# the one process's and the ranks write the file together
# (tests/python/mpi_split.py).
echo "== MPI build (XM_WITH_MPI=ON, parallel HDF5, mpirun -n 1..3) =="
. .ci/packages.sh
xm_install_packages mpi openmpi-bin libopenmpi-dev libhdf5-openmpi-dev
cmake -S . -B build-mpi -DXM_WITH_MPI=ON -DXM_WERROR=ON -DXM_BUILD_BENCH=OFF >/dev/null
cmake --build build-mpi -j "$jobs" --target xmargin_cli
ctest --test-dir build-mpi --output-on-failure -L mpi

# The public API from outside: examples/ built against an installed prefix by
# pkg-config and by CMake find_package, shared and static.
echo "== examples against the installed library =="
bash .ci/examples.sh build
