#!/usr/bin/env python3
"""Copy a portfolio with every collateral holding posted to a silo.

    /usr/bin/python3 datasets/siloed_collateral.py IN.h5 OUT.h5

Under collateral.method = scenario every holding must name a silo (METHODOLOGY 6: its
risk is carried in that silo's losses); a holding of no silo (/collateral/silo = -1) is
an input error.  This writes a copy of IN in which each such holding is posted to the
silo its account posts the most collateral to (by today's value before haircuts, in the
reporting currency; the lowest such silo on a tie), or, for an account that posts all of
its collateral to no silo, to the silo it holds the most positions in.  Nothing else
changes.  Needs numpy and h5py.  See datasets/README.md, "Collateral holdings".
"""

import shutil
import sys

import h5py
import numpy as np


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    src, dst = argv
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        if "collateral" not in f:
            print("%s: no /collateral table: nothing to do" % src)
            return 0
        G = len(f["silos/name"])
        A = len(f["accounts/id"])
        lv = f["factors/level"][:]
        c = f["collateral"]
        a, fac, q, silo = c["account"][:], c["factor"][:], c["quantity"][:], c["silo"][:]
        rep = f.attrs["currency"]
        rep = rep.decode() if isinstance(rep, bytes) else str(rep)
        X = {rep: 1.0}
        if "fx" in f:
            for cc, k in zip(f["fx/currency"][:], f["fx/factor"][:]):
                X[cc.decode() if isinstance(cc, bytes) else str(cc)] = lv[k]
        cur = ([x.decode() if isinstance(x, bytes) else str(x) for x in c["currency"][:]]
               if "currency" in c else [rep] * len(a))
        value = q * np.where(fac >= 0, lv[np.maximum(fac, 0)], 1.0) * np.array([X[x] for x in cur])
        posted = np.zeros((A, G))
        m = silo >= 0
        np.add.at(posted, (a[m], silo[m]), value[m])
        npos = np.zeros((A, G))
        inst_silo = f["instruments/silo"][:]
        np.add.at(npos, (f["positions/account"][:], inst_silo[f["positions/instrument"][:]]), 1)
        target = np.where(posted.max(axis=1) > 0, posted.argmax(axis=1), npos.argmax(axis=1))
        moved = ~m
        silo[moved] = target[a[moved]]
        c["silo"][...] = silo.astype(c["silo"].dtype)
    print("%s: %d holdings of no silo posted to a silo" % (dst, int(moved.sum())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
