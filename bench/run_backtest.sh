#!/usr/bin/env bash
# bench/run_backtest.sh: days per second of `xmargin backtest` on every backend
# (cpu and each OpenCL device `xmargin devices` lists) against the NumPy peer
# (bench/peer/peer_backtest.py: xm_reference.backtest()), measured in the same
# run (issue 15; bench/RESULTS.md).
#
#   bench/run_backtest.sh           demo and the 20k x 2k book (~10 min on 2 quiet cores)
#   bench/run_backtest.sh --quick   demo at 3 days, one round (a smoke test, ~15 s)
#   bench/run_backtest.sh --omp     only the OpenMP wait-policy measurement (~2 min)
# Options: --rounds N (3), --keep / --work DIR (keep the inputs, outputs, JSON lines),
#          --busy N (with --omp: N busy-looping processes run meanwhile, an oversubscribed
#          machine on purpose; they are stopped at the end).
# Environment: XMARGIN (default build/xmargin; built there, RelWithDebInfo, if
#              missing), PYTHON (default /usr/bin/python3: numpy, scipy, h5py).
#
# Sizes (LABEL BOOK ARGS): demo = datasets/demo-*.h5, 20 days, backtest.mc_scenarios
# 2000 (default lookback: ~1,234 historical + 2,000 MC + 128 ready-made scenarios a
# day); g20k = `xmargin generate --accounts 2000 --instruments 20000 --positions
# 100000` (seed 1, 750 days of history, 6,479 American options), 5 days, Monte Carlo
# off, historical.lookback 250 (249 historical + 460 ready-made scenarios a day):
# with 1,000 Monte Carlo scenarios a day the NumPy peer would take ~4 min a round.
# Per size: one `xmargin backtest --device cpu --save-scenarios` (untimed: its
# shocks feed the peer, equal work), one untimed run per OpenCL device (kernel
# cache warm), then ROUNDS rounds of cpu, each OpenCL device, the peer, in that
# order; xmargin is timed by its `--json` seconds (read, backtest, write), the peer
# by its own clock on the same span; medians. The peer checks every /series dataset
# of the reference file and of this round's cpu and OpenCL outputs to 1e-6 of
# max(|x|, Lambda_a) (METHODOLOGY §5's scale)
# (exit 1, loudly, if not).
# --omp: the demo size (cpu) with the default OpenMP wait policy, OMP_WAIT_POLICY=
# passive, GOMP_SPINCOUNT=0 and --threads 1, interleaved, and the same on a
# 4-account book; wall, backtest seconds, user and system CPU, context switches.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
XM=${XMARGIN:-$ROOT/build/xmargin}
PY=${PYTHON:-/usr/bin/python3}
ROUNDS=3
BUSY=0
MODE=full
KEEP=0
WORK=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MODE=quick ;;
    --omp) MODE=omp ;;
    --rounds) ROUNDS=$2; shift ;;
    --busy) BUSY=$2; shift ;;
    --keep) KEEP=1 ;;
    --work) WORK=$2; KEEP=1; shift ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "run_backtest.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
"$PY" -c 'import numpy, scipy, h5py' 2>/dev/null || { echo "run_backtest.sh: $PY lacks numpy, scipy or h5py (set PYTHON)" >&2; exit 2; }
if [ ! -x "$XM" ]; then
  echo "== build ($ROOT/build)" >&2
  cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$ROOT/build" -j"$(nproc)" >/dev/null
  XM=$ROOT/build/xmargin
fi
if [ -z "$WORK" ]; then WORK=$(mktemp -d "${TMPDIR:-/tmp}/xm_btbench.XXXXXX"); fi
mkdir -p "$WORK"
BUSY_PIDS=()
cleanup() {
  for p in "${BUSY_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ "$KEEP" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

DEMO_P=$ROOT/datasets/demo-portfolio.h5
DEMO_S=$ROOT/datasets/demo-scenarios.h5

echo "== machine" >&2
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|L3)' || true
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$XM" devices 2>/dev/null | grep -E '^(opencl|cpu)' || true
} | tee "$WORK/machine.txt" >&2

# xmargin backtest --json, one run: prints {label, device, seconds, days} as one JSON line
xmrun() { # label device out args...
  local label=$1 dev=$2 out=$3
  shift 3
  "$XM" backtest --device "$dev" -o "$out" --json "$@" 2>"$WORK/stderr.txt" |
    "$PY" -c 'import json, sys
d = json.load(sys.stdin)
print(json.dumps({"tool": "xmargin", "size": sys.argv[1], "device": sys.argv[2], "days": d["days"]["n"],
                  "accounts": d["accounts"], "sets": d["sets"], "seconds": d["seconds"]}))' "$label" "$dev"
}

if [ "$MODE" = omp ]; then
  "$XM" generate --accounts 4 --instruments 123 --positions 8 -q -o "$WORK/g4"
  for _ in $(seq "$BUSY"); do
    "$PY" -c 'while True: pass' &
    BUSY_PIDS+=($!)
  done
  echo "busy-looping processes: $BUSY" | tee -a "$WORK/machine.txt" >&2
  : >"$WORK/omp.jsonl"
  VARIANTS=("default" "OMP_WAIT_POLICY=passive" "GOMP_SPINCOUNT=0" "threads1")
  for size in demo g4; do
    if [ $size = demo ]; then P=$DEMO_P S=$DEMO_S; else P=$WORK/g4-portfolio.h5 S=$WORK/g4-scenarios.h5; fi
    n=$ROUNDS
    [ $size = g4 ] && n=$((ROUNDS * 3))
    for r in $(seq "$n"); do
      for v in "${VARIANTS[@]}"; do
        envs=() extra=()
        case $v in
          default) ;;
          threads1) extra=(--threads 1) ;;
          *) envs=("$v") ;;
        esac
        line=$(env "${envs[@]}" /usr/bin/time -f 'TIME %e %U %S %c %w' -o "$WORK/time.txt" \
          "$XM" backtest --portfolio "$P" --scenarios "$S" -o "$WORK/omp.h5" --device cpu --json \
          --days 20 --set backtest.mc_scenarios=2000 "${extra[@]}" 2>/dev/null |
          "$PY" -c 'import json, sys; print(json.load(sys.stdin)["seconds"]["backtest"])')
        read -r _ wall user sys cs_inv cs_vol <"$WORK/time.txt"
        echo "{\"size\": \"$size\", \"variant\": \"$v\", \"round\": $r, \"backtest\": $line, \"wall\": $wall, \"user\": $user, \"sys\": $sys, \"cs_involuntary\": $cs_inv, \"cs_voluntary\": $cs_vol}" | tee -a "$WORK/omp.jsonl" >&2
      done
    done
  done
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/machine.txt" >&2
  "$PY" - "$WORK/omp.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| book (20 days, 2000 MC, cpu) | variant | rounds | backtest s median (min–max) | wall s | user s | sys s | ctx switches invol. / vol. |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for size in dict.fromkeys(r["size"] for r in rows):
    base = None
    for v in dict.fromkeys(r["variant"] for r in rows):
        rr = [r for r in rows if r["size"] == size and r["variant"] == v]
        med = lambda k: statistics.median(r[k] for r in rr)
        b = [r["backtest"] for r in rr]
        base = base or med("backtest")
        print("| %s | %s | %d | %.3f (%.3f–%.3f) ×%.2f | %.2f | %.2f | %.2f | %d / %d |" % (
            size, v, len(rr), med("backtest"), min(b), max(b), med("backtest") / base, med("wall"), med("user"),
            med("sys"), med("cs_involuntary"), med("cs_voluntary")))
EOF
  exit 0
fi

# ---- sizes ------------------------------------------------------------------------
if [ "$MODE" = quick ]; then
  ROUNDS=1
  SIZES=("demo|$DEMO_P|$DEMO_S|--days 3 --set backtest.mc_scenarios=500")
else
  echo "== inputs ($WORK)" >&2
  "$XM" generate --accounts 2000 --instruments 20000 --positions 100000 -q -o "$WORK/g20k"
  SIZES=("demo|$DEMO_P|$DEMO_S|--days 20 --set backtest.mc_scenarios=2000"
         "g20k|$WORK/g20k-portfolio.h5|$WORK/g20k-scenarios.h5|--days 5 --set montecarlo.enabled=false --set historical.lookback=250")
fi
DEVS=(cpu)
for d in $("$XM" devices 2>/dev/null | awk '/^opencl:/ {print $1}'); do DEVS+=("$d"); done

FAIL=0
: >"$WORK/bt.jsonl"
for s in "${SIZES[@]}"; do
  IFS='|' read -r label P S ARGS <<<"$s"
  read -r -a args <<<"$ARGS"
  # --days N as the peer's --days; the --set pairs as they are
  pargs=()
  for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[$i]} in
      --days) pargs+=(--days "${args[$((i + 1))]}"); i=$((i + 1)) ;;
      --set) pargs+=(--set "${args[$((i + 1))]}"); i=$((i + 1)) ;;
    esac
  done
  echo "== $label: reference run (cpu, --save-scenarios) and warm-up" >&2
  xmrun "$label" cpu "$WORK/ref_$label.h5" --portfolio "$P" --scenarios "$S" --save-scenarios "${args[@]}" >/dev/null
  for d in "${DEVS[@]:1}"; do
    # the warm-up also saves the device's own Monte Carlo shocks: how far they are from the cpu's
    xmrun "$label" "$d" "$WORK/warm_$label.h5" --portfolio "$P" --scenarios "$S" --save-scenarios "${args[@]}" >/dev/null
    "$PY" - "$WORK/ref_$label.h5" "$WORK/warm_$label.h5" "$label" "$d" <<'EOF2' | tee -a "$WORK/shocks.txt" >&2
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    for s in [k for k in a.get("scenarios", {}) if k.startswith("montecarlo")]:
        x, y = a["scenarios/%s/shock" % s][()], b["scenarios/%s/shock" % s][()]
        d = np.abs(x - y)
        da, db = a["scenarios/%s/delta" % s][()], b["scenarios/%s/delta" % s][()]
        print("%s %s: %s shocks vs cpu's: max |diff| %.2e (per day %s); jitter delta not bit-equal on %d of %d days" % (
            sys.argv[3], sys.argv[4], s, np.nanmax(d), " ".join("%.0e" % v for v in np.nanmax(d, axis=(1, 2))),
            int(np.sum(da != db)), len(da)))
EOF2
  done
  for r in $(seq "$ROUNDS"); do
    cmp=(--compare "$WORK/ref_$label.h5")
    for d in "${DEVS[@]}"; do
      out="$WORK/${label}_${d//[:.]/_}.h5"
      xmrun "$label" "$d" "$out" --portfolio "$P" --scenarios "$S" "${args[@]}" | tee -a "$WORK/bt.jsonl" >&2
      cmp+=(--compare "$out")
    done
    rc=0
    "$PY" "$ROOT/bench/peer/peer_backtest.py" --portfolio "$P" --scenarios "$S" --results "$WORK/ref_$label.h5" \
      "${cmp[@]}" --rtol 1e-6 --size "$label" --jsonl "$WORK/bt.jsonl" "${pargs[@]}" \
      >"$WORK/peer_${label}_$r.out" 2>"$WORK/peer_${label}_$r.err" || rc=$?
    grep -E 'FAIL|run 1' "$WORK/peer_${label}_$r.err" >&2 || true
    if [ "$rc" != 0 ]; then
      echo "run_backtest.sh: FAIL: the NumPy peer and xmargin disagree on $label, round $r (above 1e-6)" >&2
      FAIL=1
    fi
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/machine.txt" >&2

echo
"$PY" - "$WORK/bt.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| size | days | accounts | backend | rounds | backtest s median (min–max) | days/s | vs NumPy peer | vs cpu | read s | write s |")
print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for size in dict.fromkeys(r["size"] for r in rows):
    xm = [r for r in rows if r["size"] == size and r.get("tool") == "xmargin"]
    pe = [r for r in rows if r["size"] == size and r.get("tool") == "peer_backtest"]
    peer = statistics.median(r["backtest_s"][0] for r in pe) if pe else None
    cpu = statistics.median(r["seconds"]["backtest"] for r in xm if r["device"] == "cpu")
    for dev in dict.fromkeys(r["device"] for r in xm):
        rr = [r for r in xm if r["device"] == dev]
        b = [r["seconds"]["backtest"] for r in rr]
        m = statistics.median(b)
        print("| %s | %d | %d | %s | %d | %.3f (%.3f–%.3f) | %.3f | %s | %.2f× | %.3f | %.3f |" % (
            size, rr[0]["days"], rr[0]["accounts"], dev, len(rr), m, min(b), max(b), rr[0]["days"] / m,
            "%.2f×" % (peer / m) if peer else "–", cpu / m,
            statistics.median(r["seconds"]["read"] for r in rr), statistics.median(r["seconds"]["write"] for r in rr)))
    if pe:
        b = [r["backtest_s"][0] for r in pe]
        diff = max(r["max_scaled_diff_series"] for r in pe)
        ok = all(r["compare_ok"] for r in pe)
        print("| %s | %d | %d | NumPy peer (/series max diff %.1e of max(\\|x\\|, Λ_a): %s) | %d | %.3f (%.3f–%.3f) | %.3f | 1 | %.2f× | %.3f | – |" % (
            size, pe[0]["days"], pe[0]["accounts"], diff, "ok" if ok else "FAIL", len(pe), peer, min(b), max(b),
            pe[0]["days"] / peer, cpu / peer, statistics.median(r["read_s"] + r["shocks_read_s"] for r in pe)))
EOF
if [ "$FAIL" != 0 ]; then
  echo "run_backtest.sh: FAILED: the peer disagrees with xmargin beyond 1e-6 (see above; work folder $WORK)" >&2
  KEEP=1
  exit 1
fi
echo "run_backtest.sh: every /series dataset agrees to 1e-6 of max(|x|, Lambda_a); work folder $WORK$([ "$KEEP" = 1 ] || echo ' (removed)')" >&2
