#!/usr/bin/python3
"""`--device auto` falls back to the cpu backend, with a one-line warning, when
the OpenCL device fails (out of resources during the run, or a kernel build
error), never with a wrong or empty result; an explicitly chosen device fails
instead, with the reason (the build log), exit status 1, and no output file
touched. Faults are injected with XM_TEST_FAIL_OPENCL=run|build."""
import hashlib
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_testlib as tl  # noqa: E402

T = tl.Tally()
check = T.check

XM = os.environ.get("XMARGIN", "xmargin")
SRC = os.environ.get("XM_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(SRC, "datasets")


def run(out, device=None, fault=None):
    # XM_AUTO_OPENCL_CPU=1: auto takes PoCL here (without it, a machine with no
    # GPU goes straight to the cpu backend, and there is nothing to fall back from).
    env = dict(os.environ, XM_DATA_DIR=DATA, XM_AUTO_OPENCL_CPU="1")
    env.pop("XM_DEVICE", None)
    if fault:
        env["XM_TEST_FAIL_OPENCL"] = fault
    cmd = [XM, "run", "--set", "montecarlo.scenarios=300", "-q", "-o", out]
    if device:
        cmd += ["--device", device]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def margin(path):
    with h5py.File(path, "r") as f:
        return {k: f["margin/" + k][:] for k in f["margin"]}, f.attrs["device"]


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    if not tl.opencl_available():
        tl.skip_script("`xmargin devices` lists no OpenCL device: no OpenCL run to fail and fall back from")
    with tempfile.TemporaryDirectory() as d:
        ref = os.path.join(d, "cpu.h5")
        r = run(ref, device="cpu")
        check("reference run on the cpu backend", r.returncode == 0, r.stderr)
        want, _ = margin(ref)
        for fault in ("run", "build"):
            out = os.path.join(d, "auto-%s.h5" % fault)
            r = run(out, fault=fault)
            check("auto + %s fault: exit 0" % fault, r.returncode == 0, r.stderr[-800:])
            if fault == "run":
                lines = [l for l in r.stderr.splitlines() if "warning" in l]
                check("auto + run fault: one warning line naming the cpu backend",
                      len(lines) == 1 and "cpu backend" in lines[0], r.stderr[-800:])
            else:
                check("auto + build fault: the device choice says why OpenCL was left",
                      "build failed" in r.stderr and "cpu" in r.stderr, r.stderr[-800:])
            if os.path.exists(out):
                got, dev = margin(out)
                dev = dev.decode() if isinstance(dev, bytes) else str(dev)
                check("auto + %s fault: results come from the cpu backend" % fault,
                      dev.startswith("cpu"), dev)
                check("auto + %s fault: results identical to the cpu run" % fault,
                      all(np.array_equal(got[k], want[k]) for k in want))
        for fault, what in (("run", "out of resources"), ("build", "build log")):
            out = os.path.join(d, "explicit-%s.h5" % fault)
            with open(out, "wb") as f:
                f.write(b"an earlier result that must survive")
            before = sha(out)
            r = run(out, device="opencl", fault=fault)
            check("--device opencl + %s fault: exit 1" % fault, r.returncode == 1,
                  "exit %d %s" % (r.returncode, r.stderr[-500:]))
            check("--device opencl + %s fault: the message gives the reason (%s)" % (fault, what),
                  what in r.stderr, r.stderr[-800:])
            check("--device opencl + %s fault: existing output untouched" % fault,
                  sha(out) == before)


if __name__ == "__main__":
    main()
    T.finish()
