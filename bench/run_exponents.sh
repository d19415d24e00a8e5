#!/usr/bin/env bash
# The scaling exponents of the cpu evaluate (issue 18 item 5): for each of
# S (scenarios), I (instruments), N (positions), A (accounts) and F (factors)
# the bench book of bench/run_floor.sh at three sizes of that one, everything
# else fixed, `xmargin run --device cpu --json` seconds.evaluate, ROUNDS
# rounds (each round every size of every dimension in turn: interleaved),
# medians, and the fitted exponent d log t / d log x (least squares over the
# three sizes, and over the upper two).
#
#   bench/run_exponents.sh [--rounds N] [--dims "S I N A F"] [--work DIR]
#
# Base book: synth_book.py --instruments 20000 --accounts 2000 --positions
# 100000 --underlyings 50 (F = 100 factors: a price and a vol each), 5,000
# Monte Carlo + 16 stress scenarios, historical off. Sizes: x/2, x, 2x of the
# base (F: 25, 50, 100 underlyings). Environment: XMARGIN (default
# build/xmargin), PYTHON (default /usr/bin/python3: numpy, h5py).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
XM=${XMARGIN:-$ROOT/build/xmargin}
PY=${PYTHON:-/usr/bin/python3}
ROUNDS=3
DIMS="S I N A F"
WORK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift ;;
    --dims) DIMS=$2; shift ;;
    --work) WORK=$2; shift ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) echo "run_exponents.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$XM" ] || { echo "run_exponents.sh: no $XM (build first)" >&2; exit 2; }
if [ -z "$WORK" ]; then WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT; fi
mkdir -p "$WORK"

# dimension -> "size1 size2 size3" and how a size is made
sizes() {
  case "$1" in
    S) echo "2500 5000 10000" ;;
    I) echo "10000 20000 40000" ;;
    N) echo "50000 100000 200000" ;;
    A) echo "1000 2000 4000" ;;
    F) echo "25 50 100" ;;
  esac
}
book_args() { # dim size -> synth_book arguments
  local I=20000 A=2000 N=100000 U=50
  case "$1" in
    I) I=$2 ;; N) N=$2 ;; A) A=$2 ;; F) U=$2 ;;
  esac
  echo "--instruments $I --accounts $A --positions $N --underlyings $U --mc 1"
}
for d in $DIMS; do
  for x in $(sizes "$d"); do
    b="$WORK/book-$d-$x"
    [ "$d" = S ] && b="$WORK/book-base"
    [ -f "$b/portfolio.h5" ] || "$PY" "$ROOT/bench/peer/synth_book.py" "$b" $(book_args "$d" "$x") >/dev/null
  done
done
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores;" \
     "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
: > "$WORK/times"
for r in $(seq 1 "$ROUNDS"); do
  for d in $DIMS; do
    for x in $(sizes "$d"); do
      b="$WORK/book-$d-$x" mc=5000
      [ "$d" = S ] && b="$WORK/book-base" mc=$x
      t=$("$XM" run --portfolio "$b/portfolio.h5" --scenarios "$b/scenarios.h5" --device cpu --json \
            --set historical.enabled=false --set montecarlo.scenarios=$mc -o "$WORK/out.h5" 2>/dev/null |
          "$PY" -c 'import json, sys; print(json.load(sys.stdin)["seconds"]["evaluate"])')
      echo "$d $x $t" >> "$WORK/times"
      echo "round $r: $d = $x: evaluate $t s" >&2
    done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$WORK/times" <<'EOF'
import sys
import numpy as np
rows = [l.split() for l in open(sys.argv[1])]
dims = []
for d, _, _ in rows:
    if d not in dims:
        dims.append(d)
name = {"S": "scenarios (Monte Carlo)", "I": "instruments", "N": "positions", "A": "accounts",
        "F": "underlyings (factors = 2x)"}
print("\n| dimension | sizes | evaluate s, medians | exponent (all three) | exponent (upper two) | per round |")
print("|---|---|---|---:|---:|---|")
for d in dims:
    xs = sorted({int(x) for dd, x, _ in rows if dd == d})
    per = {x: [float(t) for dd, xx, t in rows if dd == d and int(xx) == x] for x in xs}
    med = [float(np.median(per[x])) for x in xs]
    lx, lt = np.log(xs), np.log(med)
    e_all = np.polyfit(lx, lt, 1)[0]
    e_up = (lt[-1] - lt[-2]) / (lx[-1] - lx[-2])
    rounds = "; ".join("%g: %s" % (x, ", ".join("%.3f" % t for t in per[x])) for x in xs)
    print("| %s %s | %s | %s | %.2f | %.2f | %s |" % (d, name[d], ", ".join(map(str, xs)),
          ", ".join("%.3f" % m for m in med), e_all, e_up, rounds))
EOF
