#!/usr/bin/python3
"""Runs the engine's OpenCL kernels under oclgrind (an OpenCL device simulator
that checks every memory access, work-group divergence and API call) on a tiny
book with ready-made sets, on both precisions, and fails on any diagnostic.
oclgrind is installed by .ci/setup.sh."""
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

XM = os.environ.get("XMARGIN", "xmargin")
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    if ok:
        passed += 1
    else:
        failed += 1


def write_book(d):
    s = h5py.string_dtype()
    with h5py.File(os.path.join(d, "p.h5"), "w") as f:
        f.attrs["format"] = "xmargin.portfolio"
        f.attrs["format_version"] = 1
        f.attrs["valuation_date"] = "2026-11-20"
        f.attrs["currency"] = "USD"
        f["factors/name"] = np.array(["SPX", "SPX.iv", "ES"], dtype=object).astype(s)
        f["factors/kind"] = np.array(["price", "vol", "price"], dtype=object).astype(s)
        f["factors/level"] = [5000.0, 0.2, 5010.0]
        f["silos/name"] = np.array(["securities", "futures"], dtype=object).astype(s)
        f["instruments/id"] = np.array(["ETF", "ESZ6", "C5100", "P4900", "ESP"], dtype=object).astype(s)
        f["instruments/type"] = np.array(["spot", "future", "option", "option", "future_option"],
                                         dtype=object).astype(s)
        f["instruments/silo"] = [0, 1, 0, 0, 1]
        f["instruments/underlying"] = [0, 2, 0, 0, 2]
        f["instruments/vol_factor"] = [-1, -1, 1, 1, 1]
        f["instruments/strike"] = [5000.0, 5000.0, 5100.0, 4900.0, 4950.0]
        f["instruments/expiry"] = [0.0, 0.0, 0.25, 0.5, 0.1]
        f["instruments/call"] = [0, 0, 1, 0, 0]
        f["instruments/implied_vol"] = [0.0, 0.0, 0.18, 0.22, 0.2]
        f["instruments/rate"] = [0.04] * 5
        f["instruments/dividend_yield"] = [0.0, 0.0, 0.015, 0.015, 0.0]
        f["instruments/multiplier"] = [10.0, 50.0, 100.0, 100.0, 50.0]
        f["accounts/id"] = np.array(["A", "B", "C"], dtype=object).astype(s)
        f["accounts/cross_margin"] = [1, 1, 0]
        f["positions/account"] = [0, 0, 1, 1, 2, 2, 0]
        f["positions/instrument"] = [0, 1, 2, 3, 4, 0, 1]
        f["positions/quantity"] = [100.0, -20.0, -3.0, 5.0, 2.0, -7.0, 1.0]
    rng = np.random.default_rng(7)
    with h5py.File(os.path.join(d, "s.h5"), "w") as f:
        f.attrs["format"] = "xmargin.scenarios"
        f.attrs["format_version"] = 1
        for name, S, measure in (("a_worst", 9, "worst"), ("b_es", 20, "es"), ("c_var", 12, "var")):
            g = f.create_group("sets/" + name)
            g["factor"] = np.array(["SPX", "SPX.iv", "ES"], dtype=object).astype(s)
            sh = rng.normal(0, 0.03, (S, 3))
            sh[:, 2] = sh[:, 0] + rng.normal(0, 0.002, S)
            sh[:, 1] = -2 * sh[:, 0]
            g["shock"] = sh
            g["label"] = np.array(["s%d" % i for i in range(S)], dtype=object).astype(s)
            if measure == "worst":
                g["weight"] = np.where(np.arange(S) < 2, 0.35, 1.0)
            g.attrs["measure"] = measure
            if measure != "worst":
                g.attrs["confidence"] = 0.8


def main():
    og = shutil.which("oclgrind")
    check("oclgrind is installed", og is not None, "install it: .ci/setup.sh does")
    if og is None:
        print("%d passed, %d failed" % (passed, failed))
        return 1
    with tempfile.TemporaryDirectory() as d:
        write_book(d)
        for prec in ("double", "single"):
            out = os.path.join(d, "r-%s.h5" % prec)
            cmd = [og, "--check-api", "--uninitialized", XM, "run", "--device", "opencl:0.0",
                   "--portfolio", os.path.join(d, "p.h5"), "--scenarios", os.path.join(d, "s.h5"),
                   "--set", "historical.enabled=false", "--set", "montecarlo.enabled=false",
                   "--precision", prec, "-q", "-o", out]
            env = dict(os.environ, OCL_ICD_VENDORS="/nonexistent")
            # oclgrind preloads its runtime: in the sanitizer build ASan then does not
            # come first in the library list, which it accepts when told.
            env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
            err = r.stderr
            diag = [l for l in err.splitlines()
                    if any(w in l for w in ("Invalid", "invalid", "Uninitialized", "race",
                                            "Oclgrind - ", "error"))]
            check("oclgrind %s: exit 0" % prec, r.returncode == 0, err[-2000:])
            check("oclgrind %s: no diagnostics" % prec, not diag, "\n".join(diag[:20]))
            check("oclgrind %s: results written" % prec, os.path.exists(out))
            if prec == "double" and os.path.exists(out):
                ref = os.path.join(d, "r-cpu.h5")
                subprocess.run([XM, "run", "--device", "cpu", "--portfolio", os.path.join(d, "p.h5"),
                                "--scenarios", os.path.join(d, "s.h5"), "--set",
                                "historical.enabled=false", "--set", "montecarlo.enabled=false",
                                "-q", "-o", ref], check=True)
                with h5py.File(out, "r") as a, h5py.File(ref, "r") as b:
                    x, y = a["margin/requirement"][:], b["margin/requirement"][:]
                    check("oclgrind double == cpu backend", np.allclose(x, y, rtol=1e-12, atol=1e-9),
                          "%s vs %s" % (x, y))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
