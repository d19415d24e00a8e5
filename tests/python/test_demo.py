#!/usr/bin/python3
"""The shipped demo files (issue 6): they validate, `xmargin run` with no
arguments uses them, and the totals show a saving from cross-margining for the
hedged templates (basis traders, market makers hedged with futures across silos)
and none for single-silo unhedged books.

Issue 14: the liquidity add-on of the accounts that hold only linear products,
worked out here from the file (METHODOLOGY 4.1), the collateral values of the
schedule computed here (datasets/check_demo.py, METHODOLOGY 6), the pools and calls
from the engine's own requirements, some accounts with a call and some with
excess, the book's unified call below its siloed one, and the scenario method:
refused on the shipped demo (holdings of no silo), run on a copy with every
holding in a silo (datasets/siloed_collateral.py), where the BTC posted against
long bitcoin futures costs more (wrong-way)."""
import math
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
sys.path.insert(0, DATA)
import check_demo  # noqa: E402  (the independent reader and the schedule's values)

U = 0.01  # METHODOLOGY 4.1: the log-shock of the add-on
LINEAR = {"spot", "future", "perpetual"}
INVERSE_LINEAR = {"inverse_future", "inverse_perpetual"}


def strs(a):
    return [x.decode() if isinstance(x, bytes) else str(x) for x in a]


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
        summary = r.stdout
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
        issue14(p, s, out, d, env, summary)


def margin(path):
    with h5py.File(path, "r") as f:
        return {k: f["margin"][k][()] for k in f["margin"]}


def liquidity_by_hand(book):
    """LQ_a and LQ_{a,g} of the accounts whose positions are all linear (METHODOLOGY 4.1,
    u = 0.01, T' = T, no funding). A USD account's spot, future or perpetual is worth
    q m S (FESXH9: in EUR, a settled future whose P&L is converted at EURUSD), so moving
    its underlying alone by e^{+-u} gives E = q m S X_c sinh(u)/u, and moving its
    currency's factor alone moves nothing (a settled P&L is 0 when the price does not
    move). A BTC account's inverse perpetual or future (face m USD, settled in BTC) gains
    q m (1/F0 - 1/F) BTC: E = (q m / F0) sinh(u)/u BTC on its underlying (the perpetual's
    is BTC, also the account's currency: one move), and X_b = the BTC level inside the
    square root. Returns {account: (LQ, [LQ_g])} in the account's currency."""
    fac, ins, pos = book["fac"], book["ins"], book["pos"]
    lv = np.asarray(fac["level"], dtype=np.float64)
    X = {book["rep"]: 1.0}
    for c, k in zip(book["fx"]["currency"], book["fx"]["factor"]):
        X[c] = lv[int(k)]
    G = book["G"]
    out = {}
    by_acc = {}
    for a, i, q in zip(pos["account"], pos["instrument"], pos["quantity"]):
        by_acc.setdefault(int(a), []).append((int(i), float(q)))
    for a, rows in by_acc.items():
        cur = book["acc"]["currency"][a]
        usd = cur == book["rep"]
        types = INVERSE_LINEAR if not usd else LINEAR
        if not all(ins["type"][i] in types and (usd or ins["currency"][i] == cur)
                   for i, _ in rows):
            continue
        E = {}  # (silo or -1 for all, factor) -> E_f
        for i, q in rows:
            f = int(ins["underlying"][i])
            m = float(ins["multiplier"][i])
            e = q * m * (lv[f] * X[ins["currency"][i]] if usd else 1.0 / lv[f]) * math.sinh(U) / U
            for key in ((-1, f), (int(ins["silo"][i]), f)):
                E[key] = E.get(key, 0.0) + e
        xb = X[cur]

        def lq(g):
            t = 0.0
            for (gg, f), e in E.items():
                if gg != g:
                    continue
                s_, k_, A_ = fac["half_spread"][f], fac["impact"][f], fac["adv"][f]
                t += abs(e) * (s_ + (k_ * math.sqrt(abs(e) * xb / A_) if A_ > 0 and k_ > 0
                                     else 0.0))
            return t
        out[a] = (lq(-1), [lq(g) for g in range(G)])
    return out


def summary_value(text, label):
    """The first number after a label of the summary's totals ("margin call, unified pools
    (sum)  123.45 USD"), or None."""
    for line in text.splitlines():
        if line.strip().startswith(label):
            for tok in line.strip()[len(label):].split():
                try:
                    return float(tok)
                except ValueError:
                    continue
    return None


def issue14(p, s, out, d, env, summary):
    """The version-2 outputs of the demo run (issue 14)."""
    book = check_demo.check_portfolio(p)
    M = margin(out)
    need = ("liquidity", "liquidity_by_silo", "requirement_by_silo", "minimum_binds",
            "collateral_value", "collateral", "excess", "call", "call_siloed", "hedge_credit")
    missing = [k for k in need if k not in M]
    if not check("the results have the issue-14 outputs", not missing, "missing %s" % missing):
        return
    cross = np.asarray(book["acc"]["cross_margin"]) == 1
    A, G = book["A"], book["G"]
    lv = np.asarray(book["fac"]["level"], dtype=np.float64)
    fxi = {c: int(k) for c, k in zip(book["fx"]["currency"], book["fx"]["factor"])}
    xr = np.array([lv[fxi[c]] if c in fxi else 1.0 for c in book["acc"]["currency"]])
    # --- METHODOLOGY 4: the version-2 requirement
    req, mg, by = M["requirement"], M["requirement_by_silo"], M["by_silo"]
    liq, lqg = M["liquidity"], M["liquidity_by_silo"]
    tol = lambda x: 1e-9 * np.maximum(1.0, np.abs(x))  # noqa: E731
    check("requirement_by_silo >= by_silo (each silo's minimum, beta = 0)",
          np.all(mg >= by - tol(by)))
    check("unified = core + liquidity: liquidity <= unified",
          np.all(liq <= M["unified"] + tol(liq)))
    # the add-on charges each leg of a hedge on two factors (SPY/ES, perpetual/quarterly):
    # large against a tight core, small against the book
    share = float((liq * xr).sum() / (req * xr).sum())
    check("the add-on is charged (spreads and volumes in the demo), small against the book",
          (liq > 0).sum() > 0.9 * A and 0 < share < 0.01,
          "%d accounts > 0, %.4f%% of the book's requirement" % ((liq > 0).sum(), 100 * share))
    # hedges in the demo never share a factor across silos, so the add-on nets nowhere
    # between silos: LQ_a = sum_g LQ_{a,g}
    check("no factor spans two silos here: liquidity = sum of liquidity_by_silo",
          np.all(np.abs(liq - lqg.sum(axis=1)) <= 1e-9 * np.maximum(1.0, liq)))
    hand = liquidity_by_hand(book)
    worst, n = 0.0, 0
    for a, (lq, lg) in hand.items():
        want = np.array([lq] + lg)
        got = np.array([liq[a]] + list(lqg[a]))
        worst = max(worst, float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)))))
        n += 1
    with h5py.File(p, "r") as f:
        tmpl = strs(f["accounts/template"][()])
    zero = [a for a, (lq, _) in hand.items() if tmpl[a] == "perp_carry"]
    coin = sum(1 for a in hand if book["acc"]["currency"][a] != book["rep"])
    check("liquidity of the %d linear-only accounts (%d in BTC) = the hand computation (1e-9)"
          % (n, coin), n >= 50 and coin >= 2 and worst <= 1e-9,
          "worst relative difference %.3g" % worst)
    check("perp_carry: spot and perpetual on one factor net to no add-on",
          zero and all(liq[a] <= 1e-9 * 1e6 for a in zero), [liq[a] for a in zero])
    # --- METHODOLOGY 6: collateral (schedule)
    cv, acv = check_demo.collateral_values(book)
    ca = book["col"]["account"].astype(int)
    csilo = book["col"]["silo"].astype(int)
    want_cv = np.bincount(ca, weights=cv, minlength=A)
    want_acv = np.bincount(ca, weights=acv, minlength=A)
    check("collateral_value = sum of q P X_c / X_b (computed here)",
          np.all(np.abs(M["collateral_value"] - want_cv) <= tol(want_cv)),
          "max diff %.3g" % np.max(np.abs(M["collateral_value"] - want_cv)))
    check("collateral = the schedule's values after haircuts and limits (computed here)",
          np.all(np.abs(M["collateral"] - want_acv) <= tol(want_acv)),
          "max diff %.3g" % np.max(np.abs(M["collateral"] - want_acv)))
    pg = np.zeros((A, G))
    m = csilo >= 0
    np.add.at(pg, (ca[m], csilo[m]), acv[m])
    free = np.bincount(ca[~m], weights=acv[~m], minlength=A)
    Eg = pg - mg
    call_sil = np.maximum(0.0, -Eg).sum(axis=1)
    call = np.where(cross, np.maximum(0.0, req - want_acv), call_sil)
    exc = np.where(cross, want_acv - req, np.where(call > 0, -call, Eg.sum(axis=1) + free))
    check("call_siloed = sum_g max(0, M_g - the silo's pool) (from the engine's M_g)",
          np.all(np.abs(M["call_siloed"] - call_sil) <= tol(call_sil)))
    check("call and excess by METHODOLOGY 6's pools",
          np.all(np.abs(M["call"] - call) <= tol(call))
          and np.all(np.abs(M["excess"] - exc) <= tol(exc)))
    nc, ne = int((M["call"] > 0).sum()), int((M["excess"] > 0).sum())
    check("some accounts have a call, some an excess", 10 <= nc <= A // 2 and ne >= A // 2,
          "%d calls, %d with excess" % (nc, ne))
    tu, ts = float((M["call"] * xr).sum()), float((M["call_siloed"] * xr).sum())
    check("the book's unified call is below its siloed one", tu < 0.5 * ts,
          "unified %.0f, siloed %.0f USD" % (tu, ts))
    got = {k: summary_value(summary, k) for k in ("margin call, unified pools",
                                                  "margin call, siloed pools",
                                                  "collateral freed by a unified framework")}
    want = {"margin call, unified pools": tu, "margin call, siloed pools": ts,
            "collateral freed by a unified framework": ts - tu}
    check("the summary prints the unified and siloed calls and the collateral freed (USD)",
          all(got[k] is not None and abs(got[k] - want[k]) <= 0.01 + 1e-9 * want[k]
              for k in want), "printed %s, results %s" % (got, want))
    hedged = np.array([t in ("basis_spx", "basis_ndx", "index_mm_spx", "crypto_basis")
                       for t in tmpl]) & cross
    check("hedged cross-silo accounts: the siloed call exceeds the unified one in total",
          (M["call_siloed"][hedged] * xr[hedged]).sum()
          > 2 * (M["call"][hedged] * xr[hedged]).sum())
    # --- the scenario method: refused on the shipped demo, run on a siloed copy
    r = subprocess.run([XM, "run", "--set", "collateral.method=scenario", "--set",
                        "montecarlo.scenarios=2000", "--device", "cpu", "-q", "-o",
                        os.path.join(d, "scen.h5")], cwd=d, capture_output=True, text=True,
                       env=env)
    check("collateral.method = scenario on the shipped demo: exit 2 naming /collateral/silo",
          r.returncode == 2 and "/collateral/silo" in r.stderr, "rc %d %s" % (r.returncode,
                                                                            r.stderr[-400:]))
    sp = os.path.join(d, "siloed.h5")
    r = subprocess.run([sys.executable, os.path.join(DATA, "siloed_collateral.py"), p, sp],
                       capture_output=True, text=True)
    if not check("siloed_collateral.py writes a copy", r.returncode == 0, r.stderr):
        return
    outs = {}
    for method in ("schedule", "scenario"):
        o = os.path.join(d, "siloed-%s.h5" % method)
        r = subprocess.run([XM, "run", "--portfolio", sp, "--scenarios", s, "--set",
                            "collateral.method=" + method, "--set", "montecarlo.scenarios=2000",
                            "--device", "cpu", "-q", "-o", o], capture_output=True, text=True)
        if check("the siloed copy runs with collateral.method = %s" % method, r.returncode == 0,
                 r.stderr[-600:]):
            outs[method] = margin(o)
    if len(outs) < 2:
        return
    sc, sh = outs["scenario"], outs["schedule"]
    check("scenario: collateral = collateral_value (no haircuts)",
          np.all(np.abs(sc["collateral"] - sc["collateral_value"]) <= tol(sc["collateral_value"])))
    btc = book["fac"]["name"].index("BTC")
    fut = book["sil"]["name"].index("futures")
    ww = sorted({int(a) for a, f, g in zip(ca, book["col"]["factor"], csilo)
                 if int(f) == btc and g == fut})
    ratio = {a: sc["requirement_by_silo"][a, fut] / sh["requirement_by_silo"][a, fut] for a in ww}
    check("scenario: the BTC posted to the futures silo is priced in its losses (%d accounts)"
          % len(ww), len(ww) >= 5 and all(abs(x - 1) > 1e-6 for x in ratio.values()),
          {a: round(x, 4) for a, x in ratio.items()})
    # where the silo holds nothing but long bitcoin futures the BTC falls with them
    ins, pos = book["ins"], book["pos"]
    pure = [a for a in ww if all(ins["id"][int(i)] == "BTCF9" and q > 0 for aa, i, q in
                                 zip(pos["account"], pos["instrument"], pos["quantity"])
                                 if aa == a and int(ins["silo"][int(i)]) == fut)]
    check("wrong-way: BTC posted against nothing but long bitcoin futures raises the silo's "
          "requirement under the scenario method (%d accounts)" % len(pure),
          len(pure) >= 2 and all(ratio[a] > 1.1 for a in pure), [round(ratio[a], 3) for a in pure])


if __name__ == "__main__":
    main()
    T.finish()
