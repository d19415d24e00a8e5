#!/usr/bin/env bash
# The examples against an *installed* xmargin: install build/ under a fresh
# prefix, build examples/margin by pkg-config (shared and static) and by CMake
# find_package (shared and static), run each on the demo book and check that
# they print the same total (reporting currency) as `xmargin run --device cpu`.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
work=$(mktemp -d -t xm-examples.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
pc=$(dirname "$(find "$prefix" -name xmargin.pc | head -1)")
libdir=$(dirname "$pc")
export PKG_CONFIG_PATH=$pc
cflags="-std=c11 -Wall -Wextra -Werror"
cc $cflags examples/margin/margin.c $(pkg-config --cflags --libs xmargin) -Wl,-rpath,"$libdir" \
  -o "$work/margin-pc"
cc $cflags examples/margin/margin.c $(pkg-config --cflags xmargin) -Wl,-Bstatic \
  $(pkg-config --libs-only-L xmargin) -lxmargin -Wl,-Bdynamic $(pkg-config --static --libs xmargin | sed 's/-lxmargin//') \
  -o "$work/margin-pc-static"
cmake -S examples/margin -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_FLAGS="$cflags" >/dev/null
cmake --build "$work/cmake" >/dev/null
P=datasets/demo-portfolio.h5 S=datasets/demo-scenarios.h5
"$build/xmargin" run --portfolio $P --scenarios $S -o "$work/ref.h5" --device cpu --json >"$work/ref.json"
# the book's total in the reporting currency (each account's at today's rate)
want=$(/usr/bin/python3 -c "import json,sys; print('%.6f' % json.load(open(sys.argv[1]))['totals']['requirement'])" "$work/ref.json")
fail=0
for exe in "$work/margin-pc" "$work/margin-pc-static" "$work/cmake/margin" "$work/cmake/margin_static"; do
  got=$("$exe" $P $S | awk '$1 == "total" {print $2}')
  if [ "$got" = "$want" ]; then
    echo "ok   $(basename "$exe"): total $got == xmargin run"
  else
    echo "FAIL $(basename "$exe"): total '$got' != xmargin run '$want'"
    fail=1
  fi
done
# The installed shared library exports the public API only.
if nm -D --defined-only "$libdir"/libxmargin.so | awk '{print $3}' | grep -v '^xm_[a-z]' | grep -q .; then
  echo "FAIL libxmargin.so exports names outside the public API:"
  nm -D --defined-only "$libdir"/libxmargin.so | awk '{print $3}' | grep -v '^xm_[a-z]'
  fail=1
else
  echo "ok   libxmargin.so exports $(nm -D --defined-only "$libdir"/libxmargin.so | wc -l) public xm_ names, no xm__"
fi
exit $fail
