#!/usr/bin/python3
"""The shipped demo files (issue 6): they validate, `xmargin run` with no
arguments uses them, and the totals show a saving from cross-margining for the
hedged templates (basis traders, market makers hedged with futures across silos)
and none for single-silo unhedged books."""
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


def main():
    p, s = os.path.join(DATA, "demo-portfolio.h5"), os.path.join(DATA, "demo-scenarios.h5")
    size = os.path.getsize(p) + os.path.getsize(s)
    check("demo files together under 20 MB", size < 20 * 2**20, "%d bytes" % size)
    r = subprocess.run([XM, "validate", p, s], capture_output=True, text=True)
    check("xmargin validate accepts the demo files", r.returncode == 0, r.stdout + r.stderr)
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, XM_DATA_DIR=DATA)
        for bad, why in ((os.path.join(d, "no", "such", "dir", "r.h5"), "does not exist"),
                         (d, "is a directory")):
            r = subprocess.run([XM, "run", "-o", bad], capture_output=True, text=True, env=env)
            check("-o %s: refused before the run, exit 2" % why,
                  r.returncode == 2 and why in r.stderr, "exit %d %s" % (r.returncode, r.stderr))
        r = subprocess.run([XM, "run", "--set", "montecarlo.scenarios=2000", "--device", "cpu"],
                           cwd=d, capture_output=True, text=True, env=env)
        out = os.path.join(d, "xmargin-demo.h5")
        check("xmargin run with no files runs the demo", r.returncode == 0 and os.path.exists(out),
              r.stderr[-1000:])
        check("the summary names the saving", "saving from cross-margining" in r.stdout, r.stdout)
        check("no progress bar when stderr is not a terminal", "[#" not in r.stderr, r.stderr[-500:])
        # with stderr on a pseudo-terminal the run draws a progress bar there
        import pty
        mfd, sfd = pty.openpty()
        pr = subprocess.Popen([XM, "run", "--set", "montecarlo.scenarios=500", "--device", "cpu",
                               "-o", os.path.join(d, "tty.h5")], cwd=d, stdout=subprocess.DEVNULL,
                              stderr=sfd, env=env)
        os.close(sfd)
        chunks = []
        while True:
            try:
                b = os.read(mfd, 4096)
            except OSError:
                break
            if not b:
                break
            chunks.append(b)
        pr.wait()
        os.close(mfd)
        tty = b"".join(chunks).decode(errors="replace")
        check("progress bar on a terminal", pr.returncode == 0 and "[####" in tty and "100%" in tty,
              tty[-300:])
        if not os.path.exists(out):
            return
        with h5py.File(p, "r") as f:
            tmpl = np.array([x.decode() if isinstance(x, bytes) else x for x in f["accounts/template"][:]])
            cross = f["accounts/cross_margin"][:]
        with h5py.File(out, "r") as f:
            div = f["margin/diversification"][:]
            uni = f["margin/unified"][:]
            sil = f["margin/siloed"][:]
            req = f["margin/requirement"][:]
            req_g = f["margin/requirement_by_silo"][:]
        elig = cross == 1
        for t in ("basis_spx", "basis_ndx", "index_mm_spx", "index_mm_ndx", "crypto_basis"):
            m = (tmpl == t) & elig
            saving = sil[m].sum() - req[m].sum()
            check("hedged template %s: cross-margining saves (%.0f of %.0f siloed)" %
                  (t, saving, sil[m].sum()), m.any() and saving > 0.05 * sil[m].sum())
        for t in ("covered_call", "short_strangle", "protective_put"):
            m = tmpl == t
            check("single-silo template %s: no diversification credit" % t,
                  m.any() and np.allclose(div[m], 0.0, atol=1e-6 * max(1.0, sil[m].max())),
                  "max diversification %.3g" % div[m].max())
        m = ~elig
        check("accounts not eligible are margined silo by silo (requirement = the sum of the silos' "
              "own requirements, each with its own minimum: METHODOLOGY section 4)",
              m.any() and np.allclose(req[m], req_g[m].sum(axis=1), rtol=1e-12, atol=0.0))
        check("unified <= siloed for every account (subadditive here)",
              np.all(uni <= sil + 1e-9 * np.abs(sil).max()), "")


if __name__ == "__main__":
    main()
    T.finish()
