#!/usr/bin/env bash
# bench/run_liquidity.sh: what the liquidity add-on and collateral cost
# (issue 14; bench/RESULTS.md). One book run as it is (spreads, impact,
# /collateral) and as a copy without them (no half_spread/impact columns, no
# /collateral: the engine then computes no add-on), interleaved rounds, the
# evaluate time (xmargin run --json seconds.evaluate) of each; then the same
# book with collateral.method = scenario (the holdings revalued as positions;
# holdings of no silo posted to one by datasets/siloed_collateral.py, as that
# method requires).
#
#   bench/run_liquidity.sh [PORTFOLIO SCENARIOS]   default: the demo book
# Environment: XMARGIN (default build/xmargin), ROUNDS (5), DEVICE (cpu).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
XM=${XMARGIN:-$ROOT/build/xmargin}
ROUNDS=${ROUNDS:-5}
DEVICE=${DEVICE:-cpu}
case "${1:-}" in -h|--help) sed -n '2,11p' "$0"; exit 0 ;; esac
P=${1:-$ROOT/datasets/demo-portfolio.h5}
S=${2:-$ROOT/datasets/demo-scenarios.h5}
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PY" - "$P" "$TMP/plain.h5" <<'EOF'
import shutil, sys, h5py
shutil.copyfile(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "a") as f:
    for k in ("factors/half_spread", "factors/impact", "collateral"):
        if k in f:
            del f[k]
EOF
"$PY" "$ROOT/datasets/siloed_collateral.py" "$P" "$TMP/siloed.h5" >/dev/null
run() { # book, extra args...: prints seconds.evaluate
  local book=$1
  shift
  "$XM" run --portfolio "$book" --scenarios "$S" -o "$TMP/r.h5" --device "$DEVICE" --json "$@" \
    2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["seconds"]["evaluate"])'
}
echo "book: $P ($DEVICE, $ROUNDS rounds after a warm-up)"
run "$P" >/dev/null
: >"$TMP/t"
for r in $(seq "$ROUNDS"); do
  echo "$(run "$TMP/plain.h5") $(run "$P") $(run "$TMP/siloed.h5" --set collateral.method=scenario)" >>"$TMP/t"
done
"$PY" - "$TMP/t" <<'EOF'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
med = [statistics.median(c) for c in zip(*rows)]
for name, m in zip(("without add-on or collateral", "with add-on, schedule collateral",
                    "with add-on, scenario collateral"), med):
    print("%-34s evaluate median %.3f s  (x%.3f)" % (name, m, m / med[0]))
EOF
