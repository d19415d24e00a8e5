#!/usr/bin/env python3
"""`xmargin run`'s summary, text and --json (issue 14, item 5: the explanation
users ask for), against the results file of the same run.

A small book, hand-built so that each output has a reason to be non-zero:
- HEDGED (cross-margined, USD): long SPX shares (securities) against short SPX
  futures (futures): a large diversification, a hedge credit, a liquidity
  add-on per silo that nets in the unified set; cash posted to securities and
  one BTC posted to no silo (usable only by a unified pool).
- SHORTCALL (cross-margined, USD): one short SPX call struck at twice the
  spot, three weeks out: worth nothing in any scenario, so the per-contract
  minimum (0.375 x 1 x 100 = 37.50 USD) is the requirement; no collateral.
- SILOED (not eligible, USD): the HEDGED positions, margined silo by silo;
  1,000 USD of cash in securities that cannot cover the futures silo.
- BTCACC (cross-margined, margined in BTC): long one BTC future, 0.1 BTC
  posted to crypto: its outputs are in BTC; times the BTC level in USD.

Checked: the keys of --json; each per-account entry equal to the results
file's /margin datasets; the totals in the reporting currency equal to the sum
over accounts of the results' values x X_b (X_b from the book: 1 for USD, the
BTC level for BTC), the collateral freed = sum(call_siloed x X_b) -
sum(call x X_b); "minimum" named where the minimum binds (the text summary and
--json) and the set named elsewhere; the text's totals equal to --json's. The
hand values (37.50, the collateral values, the haircuts) and the section 6
pool rules on the results' requirement_by_silo are the book's, worked out
here. The same book without /collateral has no collateral keys' values (null)
and no collateral lines; with collateral.method = scenario (HEDGED's BTC then
posted to crypto, as that method requires) the rule says so and ACV = CV."""
import json
import os
import re
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_testlib as tl  # noqa: E402

T = tl.Tally()
check = T.check

SPX, BTC = 5000.0, 60000.0
CASH_HEDGED, CASH_SILOED, BTC_HEDGED, BTC_BTCACC = 20000.0, 1000.0, 1.0, 0.1
HAIRCUT_BTC = 0.15
OFFSET_CAP = 0.8
ACCOUNTS = ["HEDGED", "SHORTCALL", "SILOED", "BTCACC"]
CROSS = [1, 1, 0, 1]
X_B = np.array([1.0, 1.0, 1.0, BTC])  # one unit of each account's currency in USD

TOTAL_KEYS = ("currency", "siloed_core", "unified_core", "liquidity", "liquidity_siloed",
              "diversification", "hedge_credit", "siloed_requirement", "requirement",
              "saving_pct", "minimum_binds", "collateral_value", "collateral", "call",
              "call_siloed", "collateral_freed", "accounts_called")
ACCOUNT_KEYS = ("account", "currency", "to_reporting", "cross_margin", "requirement",
                "requirement_reporting", "binds", "binding_set", "minimum_binds", "minimum",
                "unified", "siloed", "liquidity", "diversification", "hedge_credit",
                "collateral_value", "collateral", "excess", "call", "call_siloed",
                "call_reporting")
# per-account keys of --json that are /margin datasets of the same name
SAME_AS_FILE = ("requirement", "minimum", "unified", "siloed", "liquidity", "diversification",
                "hedge_credit", "collateral_value", "collateral", "excess", "call", "call_siloed")


def write_book(path, with_collateral, btc_silo=-1):
    factors = [("SPX", "price", SPX, dict(half_spread=0.0005, impact=0.1, adv=1e9)),
               ("SPX.iv", "vol", 0.2),
               ("BTC", "price", BTC, dict(half_spread=0.001, haircut=HAIRCUT_BTC))]
    silos = ["securities", "futures", "crypto"]
    instruments = [dict(id="SPX", type="spot", silo=0, underlying=0),
                   dict(id="SPX.F", type="future", silo=1, underlying=0),
                   dict(id="SPX.C10000", type="option", silo=0, underlying=0, vol_factor=1,
                        strike=2 * SPX, expiry=0.06, call=1, implied_vol=0.2, multiplier=100),
                   dict(id="BTC.F", type="future", silo=2, underlying=2)]
    accounts = [("HEDGED", 1, "USD"), ("SHORTCALL", 1, "USD"), ("SILOED", 0, "USD"),
                ("BTCACC", 1, "BTC")]
    positions = [(0, 0, 100), (0, 1, -100), (1, 2, -1), (2, 0, 100), (2, 1, -100), (3, 3, 1)]
    coll = None
    if with_collateral:
        coll = [dict(account=0, factor=-1, quantity=CASH_HEDGED, silo=0),
                dict(account=0, factor=2, quantity=BTC_HEDGED, silo=btc_silo),
                dict(account=2, factor=-1, quantity=CASH_SILOED, silo=0),
                dict(account=3, factor=2, quantity=BTC_BTCACC, silo=2)]
    tl.write_portfolio(path, factors, silos, instruments, accounts, positions,
                       fx=[("BTC", 2)], collateral=coll)


def write_scen(path):
    tl.write_scenarios(path, sets={
        "grid": dict(factor=["SPX", "SPX.iv", "BTC"],
                     shock=[[-0.1, 0.05, -0.2], [0.1, -0.02, 0.2], [-0.05, 0.03, -0.1]]),
        "crises": dict(factor=["SPX", "BTC"], shock=[[-0.2, -0.3], [0.05, 0.25]])})


NO_GEN = ["historical.enabled=false", "montecarlo.enabled=false"]


def run(book, scen, out, json_out, extra=()):
    args = ["run", "--portfolio", book, "--scenarios", scen, "-o", out, "--device", "cpu"]
    for kv in NO_GEN + list(extra):
        args += ["--set", kv]
    if json_out:
        args.append("--json")
    return tl.run_xm(args, timeout=120)


def read_results(path):
    m = tl.read_margin(path)
    return m


def close(a, b, scale=1.0):
    return abs(float(a) - float(b)) <= 1e-9 * max(abs(float(b)), scale)


def check_json_shape(js, tag, collateral, method):
    missing = [k for k in ("rule", "totals", "largest", "largest_calls", "reporting_currency")
               if k not in js]
    check("%s: --json has rule, totals, largest, largest_calls" % tag, not missing, missing)
    rule = js.get("rule", {})
    check("%s: rule names offset_cap, buffer, minimum, collateral method" % tag,
          rule.get("offset_cap") == OFFSET_CAP and rule.get("buffer") == 0
          and rule.get("minimum_per_contract") == 0.375
          and rule.get("collateral_method") == method, rule)
    tot = js.get("totals", {})
    missing = [k for k in TOTAL_KEYS if k not in tot]
    check("%s: totals keys" % tag, not missing, missing)
    check("%s: totals in the reporting currency USD" % tag,
          tot.get("currency") == "USD" and js.get("reporting_currency") == "USD", tot.get("currency"))
    ents = js.get("largest", [])
    check("%s: largest lists every account (4 < 10)" % tag,
          sorted(e.get("account") for e in ents) == sorted(ACCOUNTS), [e.get("account") for e in ents])
    bad = [(e.get("account"), k) for e in ents for k in ACCOUNT_KEYS if k not in e]
    check("%s: every per-account key" % tag, not bad, bad[:5])
    coll_keys = ("collateral_value", "collateral", "call", "call_siloed", "collateral_freed",
                 "accounts_called")
    if collateral:
        nulls = [k for k in coll_keys if tot.get(k) is None]
        check("%s: collateral totals given" % tag, not nulls, nulls)
        check("%s: largest_calls is a list" % tag, isinstance(js.get("largest_calls"), list),
              js.get("largest_calls"))
    else:
        given = [k for k in coll_keys if tot.get(k) is not None]
        given += ["%s.%s" % (e.get("account"), k) for e in ents
                  for k in ("collateral_value", "collateral", "excess", "call", "call_siloed",
                            "call_reporting") if e.get(k) is not None]
        check("%s: no collateral: the collateral keys are null" % tag, not given, given)
        check("%s: no collateral: largest_calls is null" % tag, js.get("largest_calls") is None,
              js.get("largest_calls"))


def check_against_file(js, m, tag, collateral, method, btc_silo):
    sets = m.get("_set", [])
    A = len(ACCOUNTS)
    check("%s: results accounts in book order" % tag, m.get("_account") == ACCOUNTS,
          m.get("_account"))
    need = ["requirement", "minimum", "minimum_binds", "liquidity", "liquidity_by_silo",
            "requirement_by_silo", "hedge_credit", "binding_set", "diversification", "unified",
            "siloed", "by_silo"]
    if collateral:
        need += ["collateral_value", "collateral", "excess", "call", "call_siloed"]
    missing = [k for k in need if k not in m]
    if not check("%s: /margin has the version-2 datasets" % tag, not missing, missing):
        return
    ents = {e["account"]: e for e in js.get("largest", [])}
    # each entry = the file's values (account currency), X_b from the book
    bad = []
    for a, name in enumerate(ACCOUNTS):
        e = ents.get(name)
        if e is None:
            bad.append((name, "missing"))
            continue
        if not close(e["to_reporting"], X_B[a]):
            bad.append((name, "to_reporting", e["to_reporting"], X_B[a]))
        if e["currency"] != ("BTC" if name == "BTCACC" else "USD"):
            bad.append((name, "currency", e["currency"]))
        if bool(e["cross_margin"]) != bool(CROSS[a]):
            bad.append((name, "cross_margin", e["cross_margin"]))
        for k in SAME_AS_FILE:
            if k not in m:
                if e[k] is not None:
                    bad.append((name, k, e[k], "expected null"))
            elif e[k] is None or not close(e[k], m[k][a]):
                bad.append((name, k, e[k], float(m[k][a])))
        if not close(e["requirement_reporting"], X_B[a] * m["requirement"][a]):
            bad.append((name, "requirement_reporting", e["requirement_reporting"]))
        if collateral and not close(e["call_reporting"], X_B[a] * m["call"][a]):
            bad.append((name, "call_reporting", e["call_reporting"]))
        mb = bool(m["minimum_binds"][a])
        if e["minimum_binds"] != mb:
            bad.append((name, "minimum_binds", e["minimum_binds"], mb))
        bset = sets[int(m["binding_set"][a])]
        if e["binding_set"] != bset or e["binds"] != ("minimum" if mb else bset):
            bad.append((name, "binds/binding_set", e["binds"], e["binding_set"], mb, bset))
    check("%s: each account's --json entry = /margin (X_b: 1 USD, %g for BTC)" % (tag, BTC),
          not bad, bad[:4])

    # the totals: sum over accounts of value x X_b (the reporting currency)
    tot = js.get("totals", {})
    X = X_B
    G = m["by_silo"].shape[1]
    want = {
        "requirement": float((X * m["requirement"]).sum()),
        "liquidity": float((X * m["liquidity"]).sum()),
        "liquidity_siloed": float((X * m["liquidity_by_silo"].sum(axis=1)).sum()),
        "hedge_credit": float((X * m["hedge_credit"]).sum()),
        "diversification": float((X * m["diversification"]).sum()),
        "unified_core": float((X * (m["unified"] - m["liquidity"])).sum()),
        "siloed_core": float((X * (m["siloed"] - m["liquidity_by_silo"].sum(axis=1))).sum()),
        "siloed_requirement": float((X * m["requirement_by_silo"].sum(axis=1)).sum()),
        "minimum_binds": int(m["minimum_binds"].sum()),
    }
    if collateral:
        want.update({
            "collateral_value": float((X * m["collateral_value"]).sum()),
            "collateral": float((X * m["collateral"]).sum()),
            "call": float((X * m["call"]).sum()),
            "call_siloed": float((X * m["call_siloed"]).sum()),
            "collateral_freed": float((X * m["call_siloed"]).sum() - (X * m["call"]).sum()),
            "accounts_called": int((m["call"] > 0).sum()),
        })
    scale = want["requirement"]
    bad = [(k, tot.get(k), v) for k, v in want.items()
           if tot.get(k) is None or not close(tot[k], v, scale)]
    check("%s: totals = sum over accounts of /margin x X_b" % tag, not bad, bad)
    sr = want["siloed_requirement"]
    check("%s: saving_pct = 100 (1 - requirement / siloed_requirement)" % tag,
          tot.get("saving_pct") is not None
          and close(tot["saving_pct"], 100.0 * (1 - want["requirement"] / sr), 100.0),
          (tot.get("saving_pct"), want["requirement"], sr))
    check("%s: the silo shape [A x G]" % tag, m["requirement_by_silo"].shape == (A, G) and G == 3,
          m["requirement_by_silo"].shape)

    # worked out by hand
    a = ACCOUNTS.index("SHORTCALL")
    check("%s: SHORTCALL: minimum 0.375 x 1 x 100 = 37.50 USD is the requirement" % tag,
          close(m["minimum"][a], 37.5) and close(m["requirement"][a], 37.5)
          and int(m["minimum_binds"][a]) == 1,
          (float(m["minimum"][a]), float(m["requirement"][a]), int(m["minimum_binds"][a])))
    check("%s: SHORTCALL: --json binds 'minimum'" % tag,
          ents.get("SHORTCALL", {}).get("binds") == "minimum"
          and ents.get("SHORTCALL", {}).get("minimum_binds") is True, ents.get("SHORTCALL"))
    h = ACCOUNTS.index("HEDGED")
    check("%s: HEDGED: no option, the minimum does not bind; binds names a set" % tag,
          int(m["minimum_binds"][h]) == 0 and ents.get("HEDGED", {}).get("binds") in sets,
          ents.get("HEDGED", {}).get("binds"))
    # hedge credit: c x D where cross-margined, 0 where not
    want_h = np.where(np.array(CROSS) == 1, OFFSET_CAP * m["diversification"], 0.0)
    check("%s: hedge_credit = offset_cap x diversification (eligible), else 0" % tag,
          np.allclose(m["hedge_credit"], want_h, rtol=1e-12, atol=1e-9),
          (m["hedge_credit"].tolist(), want_h.tolist()))
    check("%s: HEDGED: a hedge credit, a diversification" % tag,
          m["hedge_credit"][h] > 0 and m["diversification"][h] > 0, float(m["hedge_credit"][h]))
    s = ACCOUNTS.index("SILOED")
    check("%s: SILOED: the requirement is the sum of its silos'" % tag,
          close(m["requirement"][s], m["requirement_by_silo"][s].sum()),
          (float(m["requirement"][s]), m["requirement_by_silo"][s].tolist()))
    check("%s: HEDGED: the liquidity add-on nets in the unified set" % tag,
          m["liquidity"][h] < m["liquidity_by_silo"][h].sum()
          and m["liquidity_by_silo"][h][0] > 0,
          (float(m["liquidity"][h]), m["liquidity_by_silo"][h].tolist()))
    if not collateral:
        return
    b = ACCOUNTS.index("BTCACC")
    cv = [CASH_HEDGED + BTC_HEDGED * BTC, 0.0, CASH_SILOED, BTC_BTCACC * BTC / BTC]
    keep = 1 - HAIRCUT_BTC if method == "schedule" else 1.0  # scenario: ACV = CV
    acv = [CASH_HEDGED + BTC_HEDGED * BTC * keep, 0.0, CASH_SILOED, BTC_BTCACC * keep]
    check("%s: collateral_value by hand (BTCACC in BTC)" % tag,
          np.allclose(m["collateral_value"], cv, rtol=1e-12), (m["collateral_value"].tolist(), cv))
    check("%s: collateral by hand (%s)" % (tag, "BTC's haircut 15%" if method == "schedule"
                                           else "scenario: ACV = CV"),
          np.allclose(m["collateral"], acv, rtol=1e-12), (m["collateral"].tolist(), acv))
    # section 6 pools on the results' requirements: pool of each silo
    pools = np.zeros((4, 3))
    pools[h, 0] = CASH_HEDGED
    if btc_silo >= 0:
        pools[h, btc_silo] += BTC_HEDGED * BTC * keep
    pools[s, 0] = CASH_SILOED
    pools[b, 2] = BTC_BTCACC * keep
    short = np.maximum(0.0, m["requirement_by_silo"] - pools).sum(axis=1)
    call = np.where(np.array(CROSS) == 1, np.maximum(0.0, m["requirement"] - np.array(acv)), short)
    check("%s: call: unified pool (eligible), silo pools (SILOED)" % tag,
          np.allclose(m["call"], call, rtol=1e-12, atol=1e-9), (m["call"].tolist(), call.tolist()))
    check("%s: call_siloed: each silo's own pool (HEDGED's BTC: %s)"
          % (tag, "of no silo, serves none" if btc_silo < 0 else "in crypto's pool"),
          np.allclose(m["call_siloed"], short, rtol=1e-12, atol=1e-9),
          (m["call_siloed"].tolist(), short.tolist()))
    freed = float((X * (m["call_siloed"] - m["call"])).sum())
    check("%s: a unified framework frees collateral here (HEDGED)" % tag,
          freed > 0 and m["call_siloed"][h] > m["call"][h], freed)
    check("%s: SHORTCALL, no collateral: its call is its requirement" % tag,
          close(m["call"][a], 37.5), float(m["call"][a]))
    check("%s: largest_calls: the accounts with a call, largest first (in USD)" % tag,
          [e["account"] for e in js.get("largest_calls", [])]
          == [ACCOUNTS[i] for i in sorted((i for i in range(4) if m["call"][i] > 0),
                                          key=lambda i: (-X[i] * m["call"][i], i))],
          [e["account"] for e in js.get("largest_calls", [])])


def text_value(text, label):
    """The number on the summary's line that starts with label."""
    for line in text.splitlines():
        if line.strip().startswith(label):
            nums = re.findall(r"-?\d+\.\d+", line[line.index(label) + len(label):])
            return float(nums[0]) if nums else None
    return None


def check_text(text, js, tag, collateral, method):
    tot = js.get("totals", {})
    lines = {
        "siloed requirement (sum)": tot.get("siloed_requirement"),
        "unified core (sum)": tot.get("unified_core"),
        "liquidity add-on, unified (sum)": tot.get("liquidity"),
        "liquidity add-on, silo by silo (sum)": tot.get("liquidity_siloed"),
        "diversification (sum)": tot.get("diversification"),
        "hedge credit (sum)": tot.get("hedge_credit"),
        "cross-margined requirement (sum)": tot.get("requirement"),
    }
    if collateral:
        lines.update({
            "collateral at today's value (sum)": tot.get("collateral_value"),
            "collateral after haircuts and limits (sum)": tot.get("collateral"),
            "margin call, unified pools (sum)": tot.get("call"),
            "margin call, siloed pools (sum)": tot.get("call_siloed"),
            "collateral freed by a unified framework": tot.get("collateral_freed"),
        })
    bad = []
    for label, v in lines.items():
        got = text_value(text, label)
        if got is None or v is None or abs(got - v) > 0.006:
            bad.append((label, got, v))
    check("%s: text totals = --json's (2 decimals, USD)" % tag, not bad, bad)
    check("%s: text names the reporting currency" % tag, "totals in USD" in text, text[:200])
    m = re.search(r"^\s*\d+\. SHORTCALL\s.*binding: (\S+)", text, re.M)
    check("%s: text: SHORTCALL's line says binding: minimum" % tag,
          m is not None and m.group(1) == "minimum", m.group(0) if m else text)
    m = re.search(r"^\s*\d+\. HEDGED\s.*binding: (\S+)", text, re.M)
    check("%s: text: HEDGED's line names a set" % tag,
          m is not None and m.group(1) in ("grid", "crises"), m.group(0) if m else "")
    n = re.search(r"accounts where the minimum binds\s+(\d+) of 4", text)
    check("%s: text: accounts where the minimum binds" % tag,
          n is not None and int(n.group(1)) == tot.get("minimum_binds"), n.group(0) if n else "")
    has = "collateral freed by a unified framework" in text
    check("%s: text: the collateral lines %s" % (tag, "shown" if collateral else "absent"),
          has == collateral, has)
    if collateral:
        check("%s: text: the collateral method named" % tag,
              "collateral (method %s)" % method in text)
        check("%s: text: largest margin calls listed" % tag, "largest margin calls" in text)


def main():
    with tl.TmpDir("xm_cli_summary_") as d:
        scen = os.path.join(d, "scen.h5")
        write_scen(scen)
        # (collateral, collateral.method, the silo of HEDGED's BTC): scenario
        # needs every holding in a silo
        for collateral, method, btc_silo in ((True, "schedule", -1), (False, "schedule", -1),
                                             (True, "scenario", 2)):
            tag = ("with collateral (%s)" % method) if collateral else "no collateral"
            book = os.path.join(d, "book%d%s.h5" % (collateral, method))
            write_book(book, collateral, btc_silo)
            out = os.path.join(d, "r%d%s.h5" % (collateral, method))
            extra = ["collateral.method=" + method]
            rc, o, e, _ = run(book, scen, out, True, extra)
            if not check("%s: xmargin run --json" % tag, rc == 0, "rc=%d %s" % (rc, e[-800:])):
                continue
            try:
                js = json.loads(o)
            except ValueError as ex:
                check("%s: --json parses" % tag, False, "%s: %s" % (ex, o[:400]))
                continue
            check_json_shape(js, tag, collateral, method)
            m = read_results(out)
            check_against_file(js, m, tag, collateral, method, btc_silo)
            with h5py.File(out, "r") as f:
                present = [k for k in ("collateral_value", "collateral", "excess", "call",
                                       "call_siloed") if k in f["margin"]]
            check("%s: the results' collateral datasets %s" % (tag, "present" if collateral
                                                                else "absent"),
                  len(present) == (5 if collateral else 0), present)
            rc, o2, e2, _ = run(book, scen, os.path.join(d, "t%d%s.h5" % (collateral, method)),
                                False, extra)
            if check("%s: xmargin run (text)" % tag, rc == 0, "rc=%d %s" % (rc, e2[-800:])):
                check_text(o2, js, tag, collateral, method)
    T.finish()


if __name__ == "__main__":
    sys.exit(main())
