#!/usr/bin/env bash
# bench/run_floor.sh: the cpu backend's evaluate against its floor on this machine
# (bench/xm_floor.c) and against the Numba peer (bench/peer/numba_peer.py), the
# targets of issue 18 item 2 ("evaluate within 1.5x of the floor, at least 3x the
# Numba peer"), measured in the same run, interleaved (bench/RESULTS.md).
#
#   bench/run_floor.sh             1e8 and 1e9 revaluations, 3 rounds (~3 min on 2 cores)
#   bench/run_floor.sh --quick     1e7, one round (a smoke test, ~20 s)
# Options: --rounds N (3), --keep / --work DIR (keep the inputs, outputs, JSON lines),
#          --no-one-thread (skip the 1-thread variants at the smallest size).
# Environment: XMARGIN (default build/xmargin; built there, RelWithDebInfo, with
#              xm_floor, if missing), XM_FLOOR (default next to it: bench/xm_floor),
#              PYTHON (default /usr/bin/python3: numpy, h5py, for the book),
#              PYTHON_NUMBA (default /work/.venv-numba/bin/python, bench/setup_numba.sh
#              makes it; without numba the peer is skipped, said so).
#
# Book: bench/peer/synth_book.py --instruments 20000 --accounts 2000 --positions 100000
# (spot, future, option, future_option; 50 underlyings, 100 factors, 3 silos), the
# issue-5 shape of bench/run.sh. Sizes (LABEL MC): 1e8 = 1,000 Monte Carlo + the 16
# `stress` scenarios (worst), 1,016 x 100,000 = 1.0e8 revaluations (scenarios x
# positions, as xm_bench counts them); 1e9 = 10,000 + 16: 1.0e9. Historical off.
# Per size one untimed `xmargin run --device cpu --save-scenarios` (its shocks are what
# the peer prices, its /margin what the peer must equal to 1e-12), then ROUNDS rounds
# of: xmargin run (--json seconds.evaluate), xm_floor (the same N, linear count, S, P,
# A, G, F; its fused stage = price + aggregate into L, one warm-up), the Numba peer
# (compiled on 64 scenarios, one timed evaluate, checked); at the smallest size the
# same three again on one thread. Medians; ratios evaluate / floor and peer / evaluate.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
XM=${XMARGIN:-$ROOT/build/xmargin}
PY=${PYTHON:-/usr/bin/python3}
PYN=${PYTHON_NUMBA:-/work/.venv-numba/bin/python}
ROUNDS=3
MODE=full
KEEP=0
ONE=1
WORK=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MODE=quick ;;
    --rounds) ROUNDS=$2; shift ;;
    --keep) KEEP=1 ;;
    --work) WORK=$2; KEEP=1; shift ;;
    --no-one-thread) ONE=0 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "run_floor.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
"$PY" -c 'import numpy, h5py' 2>/dev/null || { echo "run_floor.sh: $PY lacks numpy or h5py (set PYTHON)" >&2; exit 2; }
if [ ! -x "$XM" ]; then
  echo "== build ($ROOT/build)" >&2
  cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$ROOT/build" -j"$(nproc)" --target xmargin_cli xm_floor >/dev/null
  XM=$ROOT/build/xmargin
fi
XF=${XM_FLOOR:-$(dirname "$XM")/bench/xm_floor}
[ -x "$XF" ] || { echo "run_floor.sh: no $XF (cmake --build build --target xm_floor)" >&2; exit 2; }
NUMBA=1
if ! "$PYN" -c 'import numba' 2>/dev/null; then
  NUMBA=0
  echo "run_floor.sh: no numba in $PYN: the Numba peer is skipped (bench/setup_numba.sh installs it)" >&2
fi
if [ -z "$WORK" ]; then WORK=$(mktemp -d "${TMPDIR:-/tmp}/xm_floor.XXXXXX"); fi
mkdir -p "$WORK"
# shellcheck disable=SC2317  # called by the trap
cleanup() { [ "$KEEP" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT

case $MODE in
  quick) SIZES=("1e7 84"); ROUNDS=1 ;;
  full) SIZES=("1e8 1000" "1e9 10000") ;;
esac

echo "== machine" >&2
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|L2|L3)' || true
  grep -o -w -E 'avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ "$NUMBA" = 1 ]; then "$PYN" -c 'import numba; print("numba", numba.__version__)'; fi
} | tee "$WORK/machine.txt"

echo "== book ($WORK/b)" >&2
"$PY" "$ROOT/bench/peer/synth_book.py" "$WORK/b" --instruments 20000 --accounts 2000 \
  --positions 100000 --mc 1 >/dev/null
P=$WORK/b/portfolio.h5
SC=$WORK/b/scenarios.h5
# the floor's shape: instruments, linear ones (spot, future), factors, silos, accounts, positions
read -r NI NLIN NF NG NA NP < <("$PY" - "$P" <<'EOF'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    t = [x.decode() for x in f["instruments/type"][()]]
    print(len(t), sum(x in ("spot", "future") for x in t), len(f["factors/name"]),
          len(f["silos/name"]), len(f["accounts/id"]), len(f["positions/quantity"]))
EOF
)
echo "book: $NI instruments ($NLIN linear), $NF factors, $NG silos, $NA accounts, $NP positions" | tee -a "$WORK/machine.txt"

cfg() { echo "--set historical.enabled=false --set montecarlo.scenarios=$1"; }
echo "== reference runs (xmargin run --device cpu --save-scenarios)" >&2
for s in "${SIZES[@]}"; do
  # shellcheck disable=SC2086  # LABEL MC, split on purpose
  set -- $s
  # shellcheck disable=SC2046
  "$XM" run --portfolio "$P" --scenarios "$SC" -o "$WORK/ref_$1.h5" --device cpu --save-scenarios -q $(cfg "$2")
done

J=$WORK/floor.jsonl
: > "$J"
engine() { # label mc threads round
  local out
  # shellcheck disable=SC2046
  out=$("$XM" run --portfolio "$P" --scenarios "$SC" -o "$WORK/run.h5" --device cpu --threads "$3" \
    --json $(cfg "$2") 2>/dev/null)
  "$PY" -c 'import json, sys; d = json.loads(sys.stdin.read()); s = d["seconds"]
print(json.dumps({"size": sys.argv[1], "what": "evaluate", "threads": int(sys.argv[2]), "round": int(sys.argv[3]),
                  "seconds": s["evaluate"], "total": s["total"]}))' "$1" "$3" "$4" <<< "$out" >> "$J"
}
floor() { # label mc threads round
  local S=$(( $2 + 16 )) line
  line=$("$XF" --instruments "$NI" --linear "$NLIN" --scenarios "$S" --positions "$NP" --accounts "$NA" \
    --silos "$NG" --factors "$NF" --threads "$3" --warmup 1 --repeat 1 --size "$1" --json | grep '^XMFLOOR ')
  "$PY" -c 'import json, sys; d = json.loads(sys.argv[1][8:]); d.update(what="floor", round=int(sys.argv[2]), seconds=d["fused_s"])
print(json.dumps(d))' "$line" "$4" >> "$J"
}
peer() { # label mc threads round
  [ "$NUMBA" = 1 ] || return 0
  local line
  # shellcheck disable=SC2046
  line=$("$PYN" "$ROOT/bench/peer/numba_peer.py" --portfolio "$P" --scenarios "$SC" \
    --results "$WORK/ref_$1.h5" $(cfg "$2") --threads "$3" --warmup 0 --repeat 1 --size "$1" \
    | tee -a "$WORK/peer.out" | grep '^NUMBAPEER ') || { echo "FAIL: numba peer ($1, $3 threads)" >&2; grep FAIL "$WORK/peer.out" >&2; FAIL=1; return 0; }
  "$PY" -c 'import json, sys; d = json.loads(sys.argv[1][10:]); d.update(what="numba", round=int(sys.argv[2]), seconds=d["evaluate_s"])
print(json.dumps(d))' "$line" "$4" >> "$J"
}

FAIL=0
NT=$(nproc)
SMALL=${SIZES[0]%% *}
for r in $(seq 1 "$ROUNDS"); do
  for s in "${SIZES[@]}"; do
    # shellcheck disable=SC2086
    set -- $s
    echo "== round $r: $1 ($NT threads)" >&2
    engine "$1" "$2" "$NT" "$r"; floor "$1" "$2" "$NT" "$r"; peer "$1" "$2" "$NT" "$r"
    if [ "$ONE" = 1 ] && [ "$1" = "$SMALL" ] && [ "$NT" -gt 1 ]; then
      echo "== round $r: $1 (1 thread)" >&2
      engine "$1" "$2" 1 "$r"; floor "$1" "$2" 1 "$r"; peer "$1" "$2" 1 "$r"
    fi
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/machine.txt"

"$PY" - "$J" "$NP" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
P = int(sys.argv[2])
S_of = {}
for r in rows:
    if r["what"] == "numba":
        S_of[r["size"]] = r["S"]
    if r["what"] == "floor":
        S_of.setdefault(r["size"], r["S"])
keys = []
for r in rows:
    k = (r["size"], r["threads"])
    if k not in keys:
        keys.append(k)
def med(sz, th, what, field="seconds"):
    v = [r[field] for r in rows if r["size"] == sz and r["threads"] == th and r["what"] == what]
    return (statistics.median(v), min(v), max(v), len(v)) if v else None
print("\n| size | threads | S x P | stage | rounds | seconds median (min–max) | revaluations/s |")
print("|---|---:|---:|---|---:|---:|---:|")
for sz, th in keys:
    n = S_of[sz] * P
    for what, name in (("evaluate", "xmargin evaluate (cpu)"), ("floor", "floor: price + aggregate (xm_floor fused)"),
                       ("numba", "Numba peer")):
        m = med(sz, th, what)
        if m:
            print("| %s | %d | %.3g | %s | %d | %.3f (%.3f–%.3f) | %.3g |" % (sz, th, n, name, m[3], m[0], m[1], m[2], n / m[0]))
    for f, name in (("price_s", "floor: pricing alone"), ("agg_s", "floor: aggregation alone"), ("naive_s", "pricing, exp/log per revaluation")):
        m = med(sz, th, "floor", f)
        if m:
            print("| %s | %d | %.3g | %s | %d | %.3f (%.3f–%.3f) | – |" % (sz, th, n, name, m[3], m[0], m[1], m[2]))
print("\n| size | threads | evaluate / floor (target ≤ 1.5) | Numba / evaluate (target ≥ 3) | per round evaluate/floor | per round Numba/evaluate |")
print("|---|---:|---:|---:|---|---|")
for sz, th in keys:
    e, f, nb = med(sz, th, "evaluate"), med(sz, th, "floor"), med(sz, th, "numba")
    pr = lambda a, b: ", ".join("%.2f" % (x["seconds"] / y["seconds"]) for x in rows for y in rows
                                if x["size"] == y["size"] == sz and x["threads"] == y["threads"] == th
                                and x["what"] == a and y["what"] == b and x["round"] == y["round"])
    print("| %s | %d | %.2f | %s | %s | %s |" % (sz, th, e[0] / f[0], "%.2f" % (nb[0] / e[0]) if nb else "–",
                                              pr("evaluate", "floor"), pr("numba", "evaluate") if nb else "–"))
bad = [r for r in rows if r["what"] == "numba" and not r["ok"]]
diffs = [r["max_rel_diff"] for r in rows if r["what"] == "numba"]
if diffs:
    print("\nNumba peer vs the engine's /margin (requirement, unified, siloed, by_set): largest relative difference %.2g%s"
          % (max(diffs), "" if not bad else " FAIL"))
EOF
if [ "$KEEP" = 1 ]; then echo "kept: $WORK" >&2; fi
exit $FAIL
