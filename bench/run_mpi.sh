#!/usr/bin/env bash
# bench/run_mpi.sh: xmargin run under mpirun (issue 17, docs/scaling.md) on the
# cpu backend. Strong scaling: one generated book run by 1 process (all
# cores), then mpirun -n 1, 2, .. R (the node's cores shared among the ranks);
# weak scaling: a book of N accounts a rank, by 1 .. R ranks. Interleaved
# rounds; the wall time of the whole command (reading, sets, evaluation,
# gather, write) and the evaluate seconds of the JSON summary; the peer is the
# single process in the same round.
#   bench/run_mpi.sh [ACCOUNTS (3000)] [ROUNDS (3)] [RANKS (2)]
#   XMARGIN=build-mpi/xmargin (a build with -DXM_WITH_MPI=ON)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
XM=${XMARGIN:-$ROOT/build-mpi/xmargin}
PY=${PYTHON:-/usr/bin/python3}
A=${1:-3000}
ROUNDS=${2:-3}
RMAX=${3:-2}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
MPI=(mpirun "${root[@]}" --oversubscribe --bind-to none)
gen() { # gen PREFIX ACCOUNTS
  "$XM" generate --accounts "$2" --instruments 400 --positions $(($2 * 20)) --factors 60 \
    --seed 17 -o "$1" >/dev/null
}
gen "$W/strong" "$A"
for r in $(seq 1 "$RMAX"); do gen "$W/weak$r" $((A * r)); done
sets=(--set montecarlo.scenarios=5000 --device cpu -q)
run1() { # run1 TAG CMD...: prints TAG and the wall seconds
  local tag=$1 t0 t1
  shift
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$tag $("$PY" -c "print('%.3f' % ($t1 - $t0))")"
}
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); A=$A rounds=$ROUNDS ranks 1..$RMAX"
for round in $(seq "$ROUNDS"); do
  run1 "strong one-process" "$XM" run --portfolio "$W/strong-portfolio.h5" \
    --scenarios "$W/strong-scenarios.h5" -o "$W/o.h5" "${sets[@]}"
  for r in $(seq 1 "$RMAX"); do
    run1 "strong mpirun-n$r" "${MPI[@]}" -n "$r" "$XM" run --portfolio "$W/strong-portfolio.h5" \
      --scenarios "$W/strong-scenarios.h5" -o "$W/o$r.h5" "${sets[@]}"
  done
  for r in $(seq 1 "$RMAX"); do
    run1 "weak mpirun-n$r ($((A * r)) accounts)" "${MPI[@]}" -n "$r" "$XM" run \
      --portfolio "$W/weak$r-portfolio.h5" --scenarios "$W/weak$r-scenarios.h5" -o "$W/w$r.h5" \
      "${sets[@]}"
  done
done | tee "$W/times"
"$PY" - "$W/times" <<'PYEOF'
import sys, statistics as st, collections
t = collections.OrderedDict()
for line in open(sys.argv[1]):
    tag, s = line.rsplit(" ", 1)
    t.setdefault(tag, []).append(float(s))
base = st.median(t["strong one-process"])
print("median wall seconds (ratio to one process of the strong book):")
for tag, v in t.items():
    print("  %-40s %7.3f s  %.2fx" % (tag, st.median(v), base / st.median(v)))
PYEOF
