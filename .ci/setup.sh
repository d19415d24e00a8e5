#!/usr/bin/env bash
# Installs every dependency from Debian 12 packages, builds xmargin into build/
# and runs the main job on the shipped demo data. Idempotent: when everything
# is installed and built it only rebuilds what changed.
#   bash .ci/setup.sh            install, build, run the demo
#   bash .ci/setup.sh --no-run   install and build only
set -euo pipefail
cd "$(dirname "$0")/.."
run_demo=1
[ "${1:-}" = "--no-run" ] && run_demo=0

pkgs=(build-essential cmake pkg-config git
      ocl-icd-opencl-dev opencl-c-headers ocl-icd-libopencl1 pocl-opencl-icd clinfo
      libclblast-dev libhdf5-dev libcmocka-dev librandom123-dev libinih-dev
      libopenblas-dev liblapacke-dev libssl-dev oclgrind
      python3 python3-numpy python3-scipy python3-h5py python3-pandas python3-xarray python3-h5netcdf
      python3-cffi python3-setuptools python3-venv python3-pip # python/ (docs/python.md)
      python3-nbclient python3-ipykernel python3-matplotlib # examples/margin.ipynb in the tests
      python3-pytest # the Python package's tests (tests/python/test_py_*.py)
      clang libomp-dev) # clang and its OpenMP runtime: .ci/test.sh's clang build
. .ci/packages.sh
xm_install_packages setup "${pkgs[@]}"

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXM_WERROR=ON >/dev/null
cmake --build build -j "$jobs"

if [ $run_demo -eq 1 ]; then
  if ./build/xmargin run --help >/dev/null 2>&1; then
    ./build/xmargin run
  else
    ./build/xmargin devices
  fi
fi
