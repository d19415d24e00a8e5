#!/usr/bin/env bash
# Bounded fuzz run (tests/fuzz/README.md): builds the libFuzzer targets with
# clang into build-fuzz/ (ASan + UBSan + libFuzzer's coverage over the whole
# library), replays every saved regression input, then fuzzes each target for
# XM_FUZZ_SECONDS seconds on a copy of its seed corpus in a temporary folder
# (the repository is never written to). Every artifact is replayed: a crash,
# leak, timeout or out-of-memory of the target fails it and its reproducer is
# printed; a crash inside HDF5 in the readers' probe child, which the reader
# turns into an error as designed, is counted but does not fail.
#   bash .ci/fuzz.sh                         all three targets, 60 s each
#   XM_FUZZ_SECONDS=600 bash .ci/fuzz.sh     longer
#   XM_FUZZ_TARGETS="config" bash .ci/fuzz.sh
# The last line is "N passed, N failed" (N targets).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${XM_FUZZ_SECONDS:-60}
targets=${XM_FUZZ_TARGETS:-portfolio scenarios config}
build=build-fuzz
ntargets=$(wc -w <<<"$targets")

fail_all() { # a step before the runs failed: every target counts as failed
  echo "fuzz: $1" >&2
  echo "0 passed, $ntargets failed"
  exit 1
}

# ---- packages (Debian 12): clang, its runtimes (libFuzzer, ASan, UBSan), libomp
pkgs=(clang libclang-rt-dev libomp-dev)
. .ci/packages.sh
xm_install_packages fuzz "${pkgs[@]}" || fail_all "cannot install ${pkgs[*]}"

# ---- build --------------------------------------------------------------------
# Warnings are errors, as in the gcc builds (XM_FUZZ_WERROR=OFF turns that off).
t0=$SECONDS
if [ -f "$build/CMakeCache.txt" ] && ! grep -Eq '^CMAKE_C_COMPILER:[A-Z]+=.*clang[^/]*$' "$build/CMakeCache.txt"; then
  echo "fuzz: $build/ was configured with another compiler: reconfiguring it with clang"
  rm -f "$build/CMakeCache.txt"
fi
mkdir -p "$build"
CC=clang cmake -S . -B "$build" -DXM_FUZZ=ON -DXM_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DXM_WERROR="${XM_FUZZ_WERROR:-ON}" >"$build/fuzz-configure.log" 2>&1 ||
  { cat "$build/fuzz-configure.log" >&2; fail_all "cmake configure failed"; }
bins=()
for t in $targets; do bins+=("fuzz_$t"); done
jobs=$(nproc 2>/dev/null || echo 2)
cmake --build "$build" -j "$jobs" --target "${bins[@]}" || fail_all "build failed"
echo "fuzz: build took $((SECONDS - t0)) s"

# ---- run ------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/xm-fuzz.XXXXXX") || fail_all "mktemp failed"
running=""
trap '[ -n "$running" ] && kill -KILL -- -"$running" 2>/dev/null; rm -rf "$work"' EXIT
# The project's suppressions (tests/sanitizers/lsan.supp): its HDF5 1.10 entry
# (a leak on corrupt object headers) matches only with the slow unwinder on
# malloc, which sees through libhdf5 (about half the exec/s of the HDF5 targets).
supp="$root/tests/sanitizers/lsan.supp"
asan_hdf5="fast_unwind_on_malloc=0:malloc_context_size=10:" # ASAN_OPTIONS of the HDF5 targets
export LSAN_OPTIONS="suppressions=$supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
asan_user=${ASAN_OPTIONS:-}
unset XM_IO_NO_PROBE # the readers' probe child stays on: that is what users run
flags=(-timeout=25 -rss_limit_mb=2048 -max_len=65536)
# Every artifact is replayed up to this many a target: the readers' probe
# child crashing inside HDF5 on a corrupt file leaves one each time, by design
# (16 in one 60 s run of fuzz_scenarios); past the cap the target fails.
max_replays=${XM_FUZZ_MAX_REPLAYS:-200}
art_root="$root/$build/fuzz-artifacts"
passed=0
failed=0
summary=()

# Removes the input file a target left behind when it did not exit normally.
cleanup_pid() { rm -f /dev/shm/xm-fuzz-*-"$1"-* /tmp/xm-fuzz-*-"$1"-* 2>/dev/null; }

# run_bin LOG ARGS...: runs the target in a process group of its own (its pid,
# which also names its temporary file), and kills what is left of the group
# when it exits: a probe child stuck in HDF5 outlives a target that libFuzzer
# stopped on a timeout. Returns the target's exit status.
run_bin() {
  local log=$1 pid rc
  shift
  setsid "$bin" "${flags[@]}" "$@" >"$log" 2>&1 &
  pid=$!
  running=$pid
  last_pid=$pid
  wait $pid
  rc=$?
  kill -KILL -- -"$pid" 2>/dev/null
  running=""
  cleanup_pid $pid
  return $rc
}

# The first frame of the first sanitizer report in LOG that is not the
# sanitizers', libFuzzer's, libc's or an allocator's.
top_frame() {
  awk '/^==[0-9]+== ?ERROR: /{inrep=1; next}
       inrep && /^ *#[0-9]+ /{
         if ($0 ~ / in (__interceptor_|___interceptor_|__asan|__sanitizer|__ubsan|__lsan|fuzzer::|__libc_|malloc|calloc|realloc|free|memcpy|memmove|memset|strlen|strcpy|abort|raise)/) next
         if ($0 ~ /\(\/lib\/x86_64-linux-gnu\/libc\.so|libc\.so\.6\+|sysdeps\//) next
         print; exit }
       inrep && /^SUMMARY/{exit}' "$1"
}

# classify ARTIFACT: replays it. "contained": the target itself read it
# without error and the only report came from the readers' probe child, inside
# HDF5 (HDF5 1.10 crashes on some corrupt files: the probe exists for that).
# Anything else ("reproduces", or a report in xmargin's own code) is a finding.
classify() {
  local a=$1 rlog="$work/replay.log" rc frame
  rm -rf "$work/replay-art"
  mkdir -p "$work/replay-art"
  run_bin "$rlog" -artifact_prefix="$work/replay-art/" "$a"
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "reproduces (exit status $rc): $(grep -m1 -E 'ERROR: |SUMMARY: ' "$rlog" | sed -E 's/^==[0-9]+== ?//')"
    return 1
  fi
  if ! grep -qE '^==[0-9]+== ?ERROR: ' "$rlog"; then
    echo "clean: the target reads it without a report"
    return 0
  fi
  frame=$(top_frame "$rlog")
  # from the probe child: xm__probe on its stack, or (a stack the unwinder
  # could not follow out of libhdf5, as for an allocation-size-too-big inside
  # HDF5) every report from a process other than the target, which exited 0
  local others
  others=$({ grep -E '^==[0-9]+== ?ERROR: ' "$rlog" || true; } | { grep -vc "^==$last_pid==" || true; })
  if [ -n "$frame" ] && grep -q 'libhdf5' <<<"$frame" &&
    { grep -q 'xm__probe' "$rlog" || [ "$others" -eq "$(grep -cE '^==[0-9]+== ?ERROR: ' "$rlog" || true)" ]; }; then
    echo "contained: probe child crashed in HDF5:$(sed -E 's/^ *#[0-9]+ 0x[0-9a-f]+//' <<<"$frame")"
    return 0
  fi
  echo "probe child crashed in:$(sed -E 's/^ *#[0-9]+ 0x[0-9a-f]+//' <<<"${frame:-? (no stack)}")"
  return 1
}

for t in $targets; do
  bin="$root/$build/tests/fuzz/fuzz_$t"
  # A smaller quarantine keeps the process small: the readers' fork is cheaper.
  case $t in
  config) export ASAN_OPTIONS="quarantine_size_mb=16${asan_user:+:$asan_user}" ;;
  *) export ASAN_OPTIONS="${asan_hdf5}quarantine_size_mb=16${asan_user:+:$asan_user}" ;;
  esac
  art="$art_root/$t"
  rm -rf "$art"
  mkdir -p "$art"
  log="$art/fuzz.log"
  ok=1
  why=()
  contained=0

  # 1. replay the saved regressions of this target, one by one
  nreg=0
  for f in tests/fuzz/corpus/regressions/"$t"-*; do
    [ -f "$f" ] || continue
    nreg=$((nreg + 1))
    if res=$(classify "$root/$f"); then
      case $res in contained*) contained=$((contained + 1)) ;; esac
      echo "  regression $(basename "$f"): $res"
    else
      ok=0
      why+=("regression $f: $res")
      echo "  reproducer: $root/$f"
      echo "    $res"
    fi
  done
  [ $nreg -gt 0 ] && echo "fuzz_$t: replayed $nreg regression input(s)"

  # 2. fuzz a copy of the seed corpus
  cp -r "tests/fuzz/corpus/$t" "$work/$t"
  echo "fuzz_$t: fuzzing for $seconds s (corpus copy: $work/$t, log: $log)"
  start=$SECONDS
  run_bin "$log" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$art/" "$work/$t"
  rc=$?
  took=$((SECONDS - start))
  [ $rc -eq 0 ] || { ok=0; why+=("the fuzzer stopped with exit status $rc"); }
  # A probe child (the readers fork one) that crashes writes its artifact but
  # does not stop the fuzzer: look at every artifact, whatever the status.
  shopt -s nullglob
  found=("$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*)
  shopt -u nullglob
  n=0
  for f in "${found[@]}"; do
    n=$((n + 1))
    if [ $n -gt "$max_replays" ]; then
      ok=0
      why+=("$((${#found[@]} - max_replays)) more artifact(s) not replayed")
      break
    fi
    if res=$(classify "$f"); then
      case $res in contained*) contained=$((contained + 1)) ;; esac
    else
      ok=0
      why+=("$(basename "$f"): $res")
      echo "  reproducer: $f"
      echo "    $res"
    fi
  done
  if [ $ok -eq 0 ]; then
    grep -E "ERROR: |SUMMARY: |runtime error: |check failed|left open|does not" "$log" |
      grep -v "memcpy-param-overlap" | head -n 10
    echo "  (full log: $log)"
  fi
  # the fuzzer's own last status line (DONE when it ran its time); crashing
  # probe children print statistics too, so the stat:: lines are not used
  stats=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1)
  [ -n "$stats" ] || stats=$(grep -E "^#[0-9]+[[:space:]]" "$log" | tail -1)
  execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$stats")
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$stats")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$stats")
  corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$stats")
  eps=$(sed -nE 's/.* exec\/s: ([0-9]+).*/\1/p' <<<"$stats")
  summary+=("fuzz_$t: ${took} s, ${execs:-?} runs, ${eps:-?} exec/s, cov: ${cov:-?}, ft: ${ft:-?}, corpus: ${corp:-?} inputs, ${contained} probe-contained HDF5 crash(es)")

  if [ $ok -eq 1 ]; then
    passed=$((passed + 1))
    echo "fuzz_$t: PASS"
  else
    failed=$((failed + 1))
    echo "fuzz_$t: FAIL"
    for w in "${why[@]}"; do echo "  - $w"; done
  fi
done

for s in "${summary[@]}"; do echo "$s"; done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
