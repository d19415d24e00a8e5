#!/usr/bin/env bash
# bench/run_whatif.sh: the latency of one what-if (issue 16 item 3) on each
# backend: `xmargin whatif --json` on the demo book (340 accounts, ~11,400
# scenarios a run), one trade (1 ESH9) for each of the first N accounts; the
# median of the per-account seconds the CLI reports (xm_whatif alone, the
# book prepared once before): `seconds` the what-if with the trade (the
# increment: the trade revalued, the account's kept losses added),
# `seconds_before` the account's first what-if (its positions revalued and
# kept: what every what-if cost before the increment), interleaved rounds,
# cpu with 1 and 2 threads and each OpenCL device `xmargin devices` lists;
# and, the peer in the same round, one full `xmargin run` of the book.
#   bench/run_whatif.sh [N (40)] [ROUNDS (3)]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
XM=${XMARGIN:-$ROOT/build/xmargin}
PY=${PYTHON:-/usr/bin/python3}
N=${1:-40}
ROUNDS=${2:-3}
P=$ROOT/datasets/demo-portfolio.h5
S=$ROOT/datasets/demo-scenarios.h5
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$PY" - "$P" "$N" > "$W/trades.csv" <<'PYEOF'
import sys, h5py
with h5py.File(sys.argv[1]) as f:
    acc = [x.decode() for x in f["accounts/id"][:int(sys.argv[2])]]
print("account,instrument,quantity")
for a in acc:
    print("%s,ESH9,1" % a)
PYEOF
devs="cpu:1 cpu:2"
if "$XM" devices 2>/dev/null | grep -q "opencl:"; then devs="$devs opencl"; fi
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); N=$N rounds=$ROUNDS"
for r in $(seq "$ROUNDS"); do
  for d in $devs; do
    dev=${d%%:*}; thr=()
    [ "${d#*:}" != "$d" ] && thr=(--threads "${d#*:}")
    "$XM" whatif --portfolio "$P" --scenarios "$S" --trades "$W/trades.csv" --device "$dev" \
      "${thr[@]}" --json 2>/dev/null |
      "$PY" -c "import json,sys,statistics as st; j=json.load(sys.stdin); s=[e['seconds'] for e in j['accounts']]; b=[e['seconds_before'] for e in j['accounts']]; print('round $r %-8s prepare %.3f s  what-if median %.2f ms (min %.2f, max %.2f)  first (account run) median %.2f ms (max %.2f)' % ('$d', j['prepare_seconds'], 1e3*st.median(s), 1e3*min(s), 1e3*max(s), 1e3*st.median(b), 1e3*max(b)))"
  done
  "$XM" run --portfolio "$P" --scenarios "$S" --device cpu -o "$W/full.h5" --json 2>/dev/null |
    "$PY" -c "import json,sys; j=json.load(sys.stdin); print('round $r full run cpu: %.3f s' % j['seconds']['total'])" || true
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
