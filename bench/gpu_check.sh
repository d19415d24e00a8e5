#!/usr/bin/env bash
# One short device check on the GPU machine (see bench/README.md): the test
# binaries on the GPU's OpenCL device, the demo on the GPU checked against the
# numpy reference, and a timing of xmargin (GPU) vs the CuPy and NumPy peers
# on one synthetic book. Run from the repository root after
#   bash ../shared/gpu/bundle.sh build/xmargin build/tests/test_*
# with carry [".gpu", "build"]:  source .gpu/enter.sh; bash bench/gpu_check.sh
set -u
OUT=${OUT:-/tmp/xm-gpu-out}
mkdir -p "$OUT"
X=$PWD/build/xmargin
export XM_DATA_DIR=$PWD/datasets
PY=${PY:-python3}
echo "== machine"; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv 2>&1 | head -3
clinfo -l 2>&1 | head -5
$X devices 2>&1 | tee "$OUT/devices.txt"
echo "== cmocka tests on the GPU's OpenCL device"
# Exit status 77: nothing in it could run here (tests/CMakeLists.txt: SKIP_RETURN_CODE).
pass=0; fail=0; skipped=0
for t in build/tests/test_*; do
  [ -x "$t" ] || continue
  XM_DEVICE=auto timeout 300 "$t" > "$OUT/$(basename "$t").log" 2>&1; rc=$?
  if [ $rc -eq 0 ]; then pass=$((pass+1)); echo "ok   $t"
  elif [ $rc -eq 77 ]; then skipped=$((skipped+1)); echo "skip $t: $(grep -m1 SKIPPED "$OUT/$(basename "$t").log")"
  else fail=$((fail+1)); echo "FAIL $t"; tail -20 "$OUT/$(basename "$t").log"; fi
done
echo "== python tests"
for t in tests/python/test_*.py; do
  XMARGIN=$X XM_SOURCE_DIR=$PWD XM_DEVICE=auto timeout 300 $PY "$t" > "$OUT/$(basename "$t").log" 2>&1; rc=$?
  if [ $rc -eq 0 ]; then pass=$((pass+1)); echo "ok   $t"
  elif [ $rc -eq 77 ]; then skipped=$((skipped+1)); echo "skip $t: $(grep -m1 SKIPPED "$OUT/$(basename "$t").log")"
  else fail=$((fail+1)); echo "FAIL $t: $(tail -3 "$OUT/$(basename "$t").log" | tr '\n' ' ')"; fi
done
echo "== demo on the GPU vs the numpy reference"
$X run --device opencl --save-scenarios -o "$OUT/demo-gpu.h5" 2>&1 | tail -20
$PY tests/python/xm_reference.py --portfolio datasets/demo-portfolio.h5 --scenarios datasets/demo-scenarios.h5 \
   --set reference.var_attribution=kth --compare "$OUT/demo-gpu.h5" 2>&1 | tail -11
echo "== timing: synthetic book, GPU vs CuPy vs NumPy"
B=/tmp/xm-book; mkdir -p $B
$PY bench/peer/synth_book.py $B --instruments ${INSTR:-20000} --accounts ${ACC:-2000} --positions ${POS:-100000} --mc ${MC:-10000} >/dev/null 2>&1
for i in 1 2 3 4; do
  $X run --device opencl --portfolio $B/portfolio.h5 --scenarios $B/scenarios.h5 --save-scenarios --json -o $B/gpu.h5 2>/dev/null \
    | $PY -c 'import json,sys; d=json.load(sys.stdin); print("xmargin-gpu run", d["seconds"])'
done
$X run --device cpu --threads ${THREADS:-16} --portfolio $B/portfolio.h5 --scenarios $B/scenarios.h5 --json -o $B/cpu.h5 2>/dev/null \
    | $PY -c 'import json,sys; d=json.load(sys.stdin); print("xmargin-cpu16 run", d["seconds"])'
$PY tests/python/xm_reference.py --portfolio $B/portfolio.h5 --scenarios $B/scenarios.h5 --set reference.var_attribution=kth --compare $B/gpu.h5 2>&1 | tail -3
$PY bench/peer/cupy_peer.py --portfolio $B/portfolio.h5 --scenarios $B/scenarios.h5 --results $B/gpu.h5 --repeat 3 2>&1 | tail -4
$PY bench/peer/numpy_peer.py --portfolio $B/portfolio.h5 --scenarios $B/scenarios.h5 --results $B/gpu.h5 --repeat 1 2>&1 | tail -3
echo "== summary: $pass passed, $fail failed, $skipped skipped"
