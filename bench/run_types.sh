#!/usr/bin/env bash
# bench/run_types.sh: the per-instrument-type revaluation rates of bench/RESULTS.md
# (issue 13 item 7): bench/xm_types on the cpu backend and OpenCL (PoCL here),
# interleaved rounds, ratios to `option` measured in the same round.
#
#   bench/run_types.sh              Release build in build/, then the runs below
#   bench/run_types.sh --no-build   use build/bench/xm_types as it is
#   bench/run_types.sh --quick      small sizes (a smoke test, ~10 s)
# Environment: XM_TYPES_BUILD (build folder, default build), JOBS.
#
# Runs: (1) every type, double, N=2000 x S=20000 (american_option 16 x 256),
# both backends, 1 warm-up + 5 rounds; (2) the same in --precision single;
# (3) american_option alone at 20 x 20000 on the cpu backend (its rate at the
# main size's scenario count); (4) american_option on PoCL at 16 x 64/128/256
# scenarios (PoCL's time grows with the tile's square: see bench/xm_types.c).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${XM_TYPES_BUILD:-$ROOT/build}
NOBUILD=0
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) NOBUILD=1 ;;
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run_types.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$NOBUILD" = 0 ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j"${JOBS:-2}" --target xm_types >/dev/null
fi
XT=$BUILD/bench/xm_types
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket)' || true
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
FAIL=0
run() { echo; echo "\$ xm_types $*"; "$XT" "$@" 2>&1 | grep -v -E '^XMTYPES|: round ' || FAIL=1; }
if [ "$QUICK" = 1 ]; then
  run --instruments 200 --scenarios 2000 --american 8 64 --warmup 0 --repeat 1
else
  run --warmup 1 --repeat 5
  run --warmup 1 --repeat 5 --precision single
  run --device cpu --type american_option --american 20 20000 --warmup 1 --repeat 3
  for s in 64 128 256; do
    run --device opencl --type american_option --american 16 $s --warmup 1 --repeat 3
  done
fi
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $FAIL
