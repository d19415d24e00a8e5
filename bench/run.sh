#!/usr/bin/env bash
# bench/run.sh: the one command behind bench/RESULTS.md (issue 7).
#
#   bench/run.sh            sizes for a small CPU machine (2 cores: ~10 minutes)
#   bench/run.sh --gpu      larger sizes and the CuPy peer (a GPU machine)
#   bench/run.sh --quick    one small size only (a smoke test of the script)
# Options: --keep (keep the work folder), --work DIR, --build DIR,
#          --no-build (use the binaries already in the build folder).
# Environment: PYTHON (a python3 with numpy, scipy, h5py; cupy for --gpu),
#              XM_BENCH_BUILD (build folder, default build-bench), JOBS.
#
# Steps: build xm_bench and xmargin; write synthetic books (bench/peer/synth_book.py);
# for every size one reference run of `xmargin run --device cpu --save-scenarios`
# (its Monte Carlo shocks feed the peers: equal work); xm_bench on every backend
# (warm-up, repeats, median and spread); the peers on the same files, timed the
# same way (bench/peer/peer_bench.py), whose requirements must equal xmargin's
# to 1e-6 relative (exit 1, loudly, if not); the joined table with the ratios
# measured in this run (bench/peer/report.py).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${XM_BENCH_BUILD:-$ROOT/build-bench}
MODE=cpu
KEEP=0
NOBUILD=0
WORK=
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) MODE=gpu ;;
    --quick) MODE=quick ;;
    --keep) KEEP=1 ;;
    --work) WORK=$2; KEEP=1; shift ;;
    --build) BUILD=$2; shift ;;
    --no-build) NOBUILD=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in /usr/bin/python3 python3; do
    if "$c" -c 'import numpy, h5py, scipy' 2>/dev/null; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "run.sh: no python3 with numpy, scipy and h5py (set PYTHON)" >&2; exit 2; }

if [ -z "$WORK" ]; then WORK=$(mktemp -d "${TMPDIR:-/tmp}/xm_bench.XXXXXX"); fi
mkdir -p "$WORK"
cleanup() { [ "$KEEP" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT

if [ "$NOBUILD" = 0 ]; then
  echo "== build ($BUILD)" >&2
  cmake -S "$ROOT" -B "$BUILD" -DXM_WERROR=ON >/dev/null
  make -C "$BUILD" -j"${JOBS:-$(nproc)}" xmargin_cli xm_bench xm_membw >/dev/null
fi
XM=$BUILD/xmargin
XB=$BUILD/bench/xm_bench
PEER="$PY $ROOT/bench/peer/peer_bench.py"
SYNTH="$PY $ROOT/bench/peer/synth_book.py"

# ---- sizes: LABEL BOOK WARMUP REPEAT "SETTINGS" -----------------------------------
# Books: NAME "synth_book.py options". Revaluations = scenarios x positions.
NOHIST="historical.enabled=false"
case $MODE in
  quick)
    BOOKS=("mid --instruments 2000 --accounts 200 --positions 10000 --mc 1")
    SIZES=("mc1000 mid 1 3 $NOHIST montecarlo.scenarios=1000")
    GPU_PEER=0 ;;
  cpu)
    BOOKS=("mid --instruments 5000 --accounts 500 --positions 20000 --mc 1"
           "f500 --underlyings 250 --instruments 2000 --accounts 200 --positions 10000 --mc 1"
           "issue5 --instruments 20000 --accounts 2000 --positions 100000 --mc 1")
    SIZES=("mc1000x20k mid 1 5 $NOHIST montecarlo.scenarios=1000"
           "mc2000x20k mid 1 5 $NOHIST montecarlo.scenarios=2000"
           "mc5000x20k mid 1 3 $NOHIST montecarlo.scenarios=5000"
           "mc10000x500f f500 1 3 $NOHIST montecarlo.scenarios=10000"
           "issue5 issue5 0 1 montecarlo.scenarios=10000")
    GPU_PEER=0 ;;
  gpu)
    BOOKS=("mid --instruments 5000 --accounts 500 --positions 20000 --mc 1"
           "f500 --underlyings 250 --instruments 2000 --accounts 200 --positions 10000 --mc 1"
           "issue5 --instruments 20000 --accounts 2000 --positions 100000 --mc 1"
           "big --underlyings 100 --instruments 100000 --accounts 10000 --positions 1000000 --mc 1")
    SIZES=("mc2000x20k mid 1 5 $NOHIST montecarlo.scenarios=2000"
           "mc10000x500f f500 1 5 $NOHIST montecarlo.scenarios=10000"
           "issue5 issue5 1 3 montecarlo.scenarios=10000"
           "mc10000x1M big 0 1 $NOHIST montecarlo.scenarios=10000")
    GPU_PEER=1 ;;
esac

echo "== inputs ($WORK)" >&2
for b in "${BOOKS[@]}"; do
  set -- $b
  name=$1; shift
  $SYNTH "$WORK/$name" "$@" >/dev/null
done

XB_ARGS=()
for s in "${SIZES[@]}"; do
  set -- $s
  label=$1 book=$2 warm=$3 rep=$4; shift 4
  XB_ARGS+=(--clear-sets --warmup "$warm" --repeat "$rep")
  for kv in "$@"; do XB_ARGS+=(--set "$kv"); done
  XB_ARGS+=(--size "$label" "$WORK/$book/portfolio.h5" "$WORK/$book/scenarios.h5")
done

echo "== machine" >&2
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|L3)' || true
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  "$XM" devices 2>/dev/null | grep -E '^(opencl|cpu)' || true
  "$BUILD/bench/xm_membw" 256 5
} | tee "$WORK/machine.txt"

echo "== reference runs (xmargin run --device cpu --save-scenarios)" >&2
for s in "${SIZES[@]}"; do
  set -- $s
  label=$1 book=$2; shift 4
  args=()
  for kv in "$@"; do args+=(--set "$kv"); done
  "$XM" run --portfolio "$WORK/$book/portfolio.h5" --scenarios "$WORK/$book/scenarios.h5" \
    -o "$WORK/ref_$label.h5" --device cpu --save-scenarios -q "${args[@]}"
done

FAIL=0
echo "== xm_bench: every backend" >&2
: > "$WORK/xm.jsonl"
"$XB" --out-dir "$WORK" --jsonl "$WORK/xm.jsonl" "${XB_ARGS[@]}" > "$WORK/xm_bench.out" || FAIL=1
grep -v '^XMBENCH' "$WORK/xm_bench.out" | tee "$WORK/xm_bench.md" || true
if [ "$MODE" = cpu ]; then
  echo "== xm_bench: cpu backend on one thread (per-core comparison with the single-threaded NumPy peer)" >&2
  ONE=()
  for s in "${SIZES[@]:0:4}"; do
    set -- $s
    label=$1 book=$2 warm=$3 rep=$4; shift 4
    ONE+=(--clear-sets --warmup "$warm" --repeat "$rep")
    for kv in "$@"; do ONE+=(--set "$kv"); done
    ONE+=(--size "$label" "$WORK/$book/portfolio.h5" "$WORK/$book/scenarios.h5")
  done
  "$XB" --device cpu --threads 1 --out-dir "$WORK" --jsonl "$WORK/xm.jsonl" "${ONE[@]}" > "$WORK/xm_bench1.out" || FAIL=1
  grep -v '^XMBENCH' "$WORK/xm_bench1.out" || true
fi

echo "== peers" >&2
: > "$WORK/peer.jsonl"
PEERS=(numpy)
[ "$GPU_PEER" = 1 ] && PEERS+=(cupy)
for s in "${SIZES[@]}"; do
  set -- $s
  label=$1 book=$2 warm=$3 rep=$4; shift 4
  args=()
  for kv in "$@"; do args+=(--set "$kv"); done
  for pk in "${PEERS[@]}"; do
    prep=$rep
    # the NumPy peer at 10^10 revaluations would take many minutes: once
    if [ "$pk" = numpy ] && [ "$label" = mc10000x1M ]; then prep=1; fi
    rc=0
    $PEER --xp "$pk" --portfolio "$WORK/$book/portfolio.h5" --scenarios "$WORK/$book/scenarios.h5" \
      --results "$WORK/ref_$label.h5" --compare "$WORK/ref_$label.h5" --rtol 1e-6 \
      --repeat "$prep" --size "$label" --jsonl "$WORK/peer.jsonl" "${args[@]}" > "$WORK/peer_${pk}_$label.out" || rc=$?
    grep -v '^PEERBENCH' "$WORK/peer_${pk}_$label.out" || true
    if [ "$rc" != 0 ]; then
      echo "run.sh: FAIL: the $pk peer disagrees with xmargin on $label (above 1e-6 relative)" >&2
      FAIL=1
    fi
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/machine.txt"

echo
echo "## Results ($MODE mode)"
"$PY" "$ROOT/bench/peer/report.py" "$WORK/xm.jsonl" "$WORK/peer.jsonl" | tee "$WORK/report.md" || FAIL=1
if [ "$FAIL" != 0 ]; then
  echo "run.sh: FAILED: a backend or a peer disagrees with xmargin's cpu backend beyond 1e-6 (see above)" >&2
  exit 1
fi
echo "run.sh: all requirements agree to 1e-6 relative; work folder $WORK$([ "$KEEP" = 1 ] || echo ' (removed)')" >&2
