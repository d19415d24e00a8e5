#!/usr/bin/env bash
# bench/run_mc.sh: Monte Carlo generation at ~2,000 factors against the GEMM
# floor of each backend (issue 18 item 3: "Monte Carlo at 2,000 factors within
# 2x of the GEMM floor of each device, the triangular product's flops over the
# BLAS's measured rate"), measured in the same run, interleaved (bench/RESULTS.md).
#
#   bench/run_mc.sh            10,000 scenarios, 3 rounds, cpu and opencl (~6-8 min on 2 cores)
#   bench/run_mc.sh --quick    1,000 scenarios, one round (a smoke test)
# Options: --rounds N (3), --scenarios S (10000), --keep / --work DIR (keep the book
#          and the JSON lines), --no-opencl, --clblast-database (also time CLBlast
#          with its own parameters: ~1.5 min more, its kernels compile slowly on PoCL).
# Environment: XMARGIN (default build/xmargin), XM_BENCH and XM_BLAS_RATE (default
#              next to it: bench/xm_bench, bench/xm_blas_rate; built there if missing),
#              PYTHON (default /usr/bin/python3: numpy, h5py, for the book).
#
# Book: bench/peer/synth_book.py --underlyings 1000 --instruments 6000 --accounts 100
# --positions 12000 (spot, future, option, future_option on 1,000 underlyings:
# 2,000 factors, price and vol), history 300 days; the factors the run moves
# (METHODOLOGY.md 1), F, are counted by one untimed run (--save-scenarios, 16
# scenarios): 1,973 on this book. Historical off, Monte Carlo S scenarios (plus the
# book's 16 `stress` scenarios, copied: negligible).
# Each round: xm_bench --device cpu, then --device opencl (--warmup 1 --repeat 1: the
# context, its kernels and CLBlast's compiled before the timing) reports seconds.scenarios,
# the stage that makes the shocks (xm__cpu_mc / xm__ocl_mc: normals, product, exp or
# gather, and the first touch of X and EX); then xm_blas_rate (bench/xm_blas_rate.c):
# OpenBLAS dgemm and dtrmm at S x F (the cpu backend's own cblas_dtrmm call), CLBlast
# DGEMM on the OpenCL device at the backend's shapes (one m = Fp, n = S, k = Fp GEMM;
# the backend's nb blocks) with the backend's PoCL parameters.
# Floor: the triangular product's flops, S F^2 (row s, column j of X = Z L^T sums
# j + 1 products: j + 1 multiplies and j adds, sum_j (2j - 1) = F^2 a row), over the
# BLAS's measured DGEMM rate (cpu: OpenBLAS dgemm, S x F x F, 2 S F^2 flops; opencl:
# the best of the CLBlast DGEMMs measured, its own flops). Medians over the rounds;
# ratios scenarios / floor. Last, one `xmargin run` with XM_PROFILE=1 on opencl for the
# split of its kernels (normals, CLBlast, gather); the cpu's split is the dtrmm alone
# against the rest of the stage.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
XM=${XMARGIN:-$ROOT/build/xmargin}
PY=${PYTHON:-/usr/bin/python3}
ROUNDS=3
S=10000
KEEP=0
OCL=1
DB=0
WORK=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) S=1000; ROUNDS=1 ;;
    --rounds) ROUNDS=$2; shift ;;
    --scenarios) S=$2; shift ;;
    --keep) KEEP=1 ;;
    --work) WORK=$2; KEEP=1; shift ;;
    --no-opencl) OCL=0 ;;
    --clblast-database) DB=1 ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "run_mc.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
"$PY" -c 'import numpy, h5py' 2>/dev/null || { echo "run_mc.sh: $PY lacks numpy or h5py (set PYTHON)" >&2; exit 2; }
BIN=$(dirname "$XM")
XB=${XM_BENCH:-$BIN/bench/xm_bench}
XR=${XM_BLAS_RATE:-$BIN/bench/xm_blas_rate}
if [ ! -x "$XM" ] || [ ! -x "$XB" ] || [ ! -x "$XR" ]; then
  echo "== build ($BIN: xmargin_cli xm_bench xm_blas_rate)" >&2
  [ -f "$BIN/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BIN" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake "$BIN" -DXM_BUILD_BENCH=ON >/dev/null
  cmake --build "$BIN" -j"$(nproc)" --target xmargin_cli xm_bench xm_blas_rate >/dev/null
fi
if [ "$OCL" = 1 ] && ! "$XM" devices 2>/dev/null | grep -q '^opencl:'; then
  echo "run_mc.sh: no OpenCL device: opencl skipped" >&2
  OCL=0
fi
if [ -z "$WORK" ]; then WORK=$(mktemp -d "${TMPDIR:-/tmp}/xm_mc.XXXXXX"); fi
mkdir -p "$WORK"
# shellcheck disable=SC2317  # called by the trap
cleanup() { [ "$KEEP" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT

echo "== machine" >&2
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|L2|L3)' || true
  grep -o -w -E 'avx512f|avx2|fma' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$WORK/machine.txt"

P=$WORK/b/portfolio.h5
SC=$WORK/b/scenarios.h5
if [ ! -f "$P" ]; then
  echo "== book ($WORK/b)" >&2
  "$PY" "$ROOT/bench/peer/synth_book.py" "$WORK/b" --underlyings 1000 --instruments 6000 \
    --accounts 100 --positions 12000 --history 300 --mc 1 >/dev/null
fi
CFG=(--set historical.enabled=false --set "montecarlo.scenarios=$S")
"$XM" run --portfolio "$P" --scenarios "$SC" -o "$WORK/f.h5" --device cpu -q --save-scenarios \
  --set historical.enabled=false --set montecarlo.scenarios=16 2>/dev/null
F=$("$PY" -c 'import sys, h5py; print(h5py.File(sys.argv[1], "r")["scenarios/montecarlo/shock"].shape[1])' "$WORK/f.h5")
NFB=$("$PY" -c 'import sys, h5py; print(len(h5py.File(sys.argv[1], "r")["factors/name"]))' "$P")
echo "book: $NFB factors, $F of them moved (the Monte Carlo's F); S = $S" | tee -a "$WORK/machine.txt"

J=$WORK/mc.jsonl
: > "$J"
bench() { # device round [env...]
  local dev=$1 r=$2
  shift 2
  env "$@" "$XB" --device "$dev" --warmup 1 --repeat 1 "${CFG[@]}" --size "mc$S" "$P" "$SC" \
    2> "$WORK/bench_$dev.err" | grep '^XMBENCH ' |
    "$PY" -c 'import json, sys; d = json.loads(sys.stdin.read()[8:])
print(json.dumps({"what": "scenarios", "backend": sys.argv[1], "round": int(sys.argv[2]),
                  "seconds": d["scenarios_s"][0], "evaluate": d["evaluate_s"][0]}))' "$dev" "$r" >> "$J"
}
blas() { # round args...
  local r=$1
  shift
  "$XR" --scenarios "$S" --factors "$F" --warmup 1 --repeat 1 "$@" 2>>"$WORK/blas.err" |
    grep '^XMBLAS ' | cut -c8- |
    "$PY" -c 'import json, sys
for l in sys.stdin:
    d = json.loads(l); d.update(round=int(sys.argv[1])); print(json.dumps(d))' "$r" >> "$J"
}
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r: cpu" >&2
  bench cpu "$r"
  if [ "$OCL" = 1 ]; then
    echo "== round $r: opencl" >&2
    bench opencl "$r"
  fi
  echo "== round $r: OpenBLAS rate" >&2
  blas "$r"
  if [ "$OCL" = 1 ]; then
    echo "== round $r: CLBlast rate" >&2
    blas "$r" --no-cpu --opencl --cl-params xmargin
  fi
done
if [ "$OCL" = 1 ]; then
  if [ "$DB" = 1 ]; then
    echo "== CLBlast with its own parameters (once)" >&2
    blas 0 --no-cpu --opencl --cl-params database
  fi
  echo "== opencl split (XM_PROFILE=1 xmargin run: one run, its first CLBlast call builds the program)" >&2
  env XM_PROFILE=1 "$XM" run --portfolio "$P" --scenarios "$SC" -o "$WORK/p.h5" --device opencl -q \
    "${CFG[@]}" > /dev/null 2> "$WORK/profile.err" || true
  grep 'xmargin profile' "$WORK/profile.err" > "$WORK/profile.txt" || true
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/machine.txt"

"$PY" - "$J" "$S" "$F" "$WORK/profile.txt" <<'EOF'
import json, os, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
S, F = int(sys.argv[2]), int(sys.argv[3])
flops = float(S) * F * F
def pick(**k):
    return [r for r in rows if all(r.get(a) == b for a, b in k.items()) and r.get("round", 0) > 0]
def med(v):
    return (statistics.median(v), min(v), max(v), len(v)) if v else None
def fmt(m, unit=""):
    return "%.3f (%.3f–%.3f)%s" % (m[0], m[1], m[2], unit) if m else "–"
print("\nS = %d scenarios, F = %d factors: the triangular product S F^2 = %.4g flops\n" % (S, F, flops))
print("| measurement | rounds | seconds median (min–max) | GFLOP/s (median) |")
print("|---|---:|---:|---:|")
for be in ("cpu", "opencl"):
    m = med([r["seconds"] for r in pick(what="scenarios", backend=be)])
    if m:
        print("| xmargin %s: seconds.scenarios (Monte Carlo %d x %d + 16 stress) | %d | %s | %.1f (S F^2 / t) |"
              % (be, S, F, m[3], fmt(m), 1e-9 * flops / m[0]))
blas = {}
for r in rows:
    if "what" in r and r["what"].startswith("d"):
        blas.setdefault((r["backend"], r["what"], r["params"]), []).append(r)
for (be, what, params), v in blas.items():
    v = [r for r in v if r["round"] > 0] or v
    m = med([r["seconds"] for r in v])
    g = med([r["gflops"] for r in v])
    print("| %s %s (%s), %.4g flops | %d | %s | %.1f (%.1f–%.1f) |" % (be, what, params, v[0]["flops"], m[3], fmt(m), g[0], g[1], g[2]))
def rate(be):
    if be == "cpu":
        v = [r["gflops"] for r in pick(backend="cpu", what="dgemm")]
        return (statistics.median(v), "OpenBLAS dgemm") if v else None
    best = None
    for (b, what, params), v in blas.items():
        if b != "opencl":
            continue
        v = [r["gflops"] for r in v if r["round"] > 0] or [r["gflops"] for r in v]
        g = statistics.median(v)
        if not best or g > best[0]:
            best = (g, "CLBlast %s (%s)" % (what, params))
    return best
print("\n| backend | floor rate GFLOP/s (the BLAS) | floor s = S F^2 / rate | scenarios s (median) | ratio (target ≤ 2) | per round ratio |")
print("|---|---|---:|---:|---:|---|")
for be in ("cpu", "opencl"):
    sc = pick(what="scenarios", backend=be)
    rt = rate(be)
    if not sc or not rt:
        continue
    fl = flops / (1e9 * rt[0])
    m = statistics.median([r["seconds"] for r in sc])
    per = []
    for r in sc:  # the same round's rate
        if be == "cpu":
            g = [x["gflops"] for x in pick(backend="cpu", what="dgemm") if x["round"] == r["round"]]
        else:
            g = [x["gflops"] for x in pick(backend="opencl") if x["round"] == r["round"] and x["what"].startswith("d")]
            g = [max(g)] if g else []
        if g:
            per.append("%.2f" % (r["seconds"] / (flops / (1e9 * g[0]))))
    print("| %s | %.1f (%s) | %.3f | %.3f | %.2f %s | %s |" % (be, rt[0], rt[1], fl, m, m / fl,
          "met" if m / fl <= 2 else "MISSED", ", ".join(per)))
# the pieces
tr = [r["seconds"] for r in pick(backend="cpu", what="dtrmm")]
sc = [r["seconds"] for r in pick(what="scenarios", backend="cpu")]
if tr and sc:
    a, b = statistics.median(sc), statistics.median(tr)
    print("\ncpu split (medians): OpenBLAS dtrmm alone %.3f s; the rest of the stage (normals, exp, the first touch of X and EX, the stress rows) %.3f s" % (b, a - b))
p = sys.argv[4]
if os.path.exists(p) and os.path.getsize(p):
    line = open(p).read()
    k = dict((a, float(b)) for a, b in re.findall(r"(\w+(?:\(CLBlast\))?) ([0-9.]+)", line.split(":", 1)[1]))
    parts = ["%s %.3f s" % (n, k[n] / 1e3) for n in ("mc_scale", "mc_normals", "mc_gemm(CLBlast)", "mc_gather", "exp") if n in k]
    print("opencl split (XM_PROFILE=1 xmargin run, one run; mc_gemm includes CLBlast's program build, from PoCL's cache): " + ", ".join(parts))
EOF
if [ "$KEEP" = 1 ]; then echo "kept: $WORK" >&2; fi
