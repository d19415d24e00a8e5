"""xmargin.run, xmargin.read_results, xmargin.validate: results as an
xarray.Dataset with the layout of the results file (FORMAT.md section 3)."""

import os
import time

import numpy as np

from ._book import Book
from ._scenarios import Scenarios
from ._core import (Diag, Error, FormatError, XM_OK, array_out, config_text, context_for, cstr,
                    ffi, lib, make_config, raise_status, string, strings)

# The /margin datasets of the results file, in the writer's order
# (io/xm_io_write.c), with their dimensions and long_name.
MARGIN = [
    ("requirement", ("account",), "margin requirement"),
    ("unified", ("account",), "unified requirement: the whole account's worst set measure plus its add-on"),
    ("siloed", ("account",), "siloed requirement: the sum over silos of each silo's core plus its add-on"),
    ("diversification", ("account",), "diversification: max(0, siloed - unified)"),
    ("minimum", ("account",), "minimum charge per option contract"),
    ("by_set", ("account", "set"), "risk measure of the whole account in each scenario set"),
    ("by_silo", ("account", "silo"), "each silo's core plus its add-on"),
    ("attribution", ("account", "silo"), "each silo's share of the unified core (unified - liquidity)"),
    ("liquidity", ("account",), "liquidity and concentration add-on of the whole account (in unified)"),
    ("liquidity_by_silo", ("account", "silo"), "each silo's liquidity and concentration add-on (in by_silo)"),
    ("requirement_by_silo", ("account", "silo"),
     "each silo's requirement on its own: max((1 + buffer) by_silo, the silo's minimum)"),
    ("hedge_credit", ("account",), "hedge credit: offset_cap x diversification (cross-margined accounts; else 0)"),
    ("collateral_value", ("account",), "collateral at today's value, before haircuts and limits"),
    ("collateral", ("account",), "collateral after haircuts and concentration limits"),
    ("excess", ("account",), "collateral in excess of the requirement (negative: short of margin)"),
    ("call", ("account",), "margin call"),
    ("call_siloed", ("account",), "margin call if each silo were margined apart, with its own pool"),
]
BINDING_LONG = "the scenario set whose measure is the unified core (index into /set)"
MINBINDS_LONG = "1 where the minimum charge is the requirement"
PNL_LONG = "loss of each account in each scenario (positive = loss)"
CURRENCY_LONG = None  # /margin/currency carries no attribute
_SCALES = {"account", "silo", "set"}


def _units(currencies):
    u = None
    for c in currencies:
        if u is None:
            u = c
        elif c != u:
            return "account currency"
    return u if u is not None else ""


def _dataset(acc, silo, sets, margin, binding, minimum_binds, currency, labels, pnl, shock, factor, attrs):
    """The Dataset of a results file: margin {name: array}, labels {set: [S]},
    pnl {set: [S x A] float32}, shock {set: [S x F]}."""
    import xarray as xr

    units = _units(currency)
    coords = {"account": np.array(acc, dtype=object), "silo": np.array(silo, dtype=object),
              "set": np.array(sets, dtype=object)}
    data = {}
    for name, dims, long_name in MARGIN:
        if name in margin and margin[name] is not None:
            data[name] = xr.Variable(dims, margin[name], {"units": units, "long_name": long_name})
    data["currency"] = xr.Variable(("account",), np.array(currency, dtype=object))
    battrs = {"long_name": BINDING_LONG}
    if len(sets) > 0 and not any(" " in s for s in sets):
        battrs["flag_values"] = np.arange(len(sets), dtype=np.int32)
        battrs["flag_meanings"] = " ".join(sets)
    data["binding_set"] = xr.Variable(("account",), binding.astype(np.int32), battrs)
    if minimum_binds is not None:
        data["minimum_binds"] = xr.Variable(("account",), minimum_binds.astype(np.int32),
                                            {"long_name": MINBINDS_LONG, "flag_values": np.array([0, 1], np.int32),
                                             "flag_meanings": "risk_measure minimum"})
    for s in sets:
        if s in labels:
            coords["scenario_" + s] = np.array(labels[s], dtype=object)
        if s in pnl:
            data["pnl_" + s] = xr.Variable(("scenario_" + s, "account"), pnl[s],
                                           {"units": units, "long_name": PNL_LONG})
        if s in shock:
            data["shock_" + s] = xr.Variable(("scenario_" + s, "factor"), shock[s])
    if shock and factor is not None:
        coords["factor"] = np.array(factor, dtype=object)
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _input(x, cls, ctype, read, free, validate, what, keep):
    """(an xm_<ctype> *, the file it holds, the file it came from): a Book /
    Scenarios as a view over its arrays, validated (the file it holds: its
    source(), None once changed); else the file at path x, read (and
    validated)."""
    if isinstance(x, cls):
        p, k = x._view()
        keep.append(k)
        path, came_from, where = x.source(), x.path, "%s %s" % (what, x.path or "(in memory)")
        with Diag() as d:
            st = validate(p, d.ptr)
            msgs = d.messages()
    else:
        path = came_from = os.fspath(x)
        p = ffi.gc(ffi.new(ctype + " *"), free)
        where = "reading %s" % path
        with Diag() as d:
            st = read(cstr(path), p, d.ptr)
            msgs = d.messages()
    if st != XM_OK:
        raise_status(st, where, msgs)
    keep.append(p)
    return p, path, came_from


def _open_inputs(book, scenarios, keep):
    """(xm_portfolio *, xm_scenario_file *, portfolio path, scenarios path, the
    files they came from): the paths are the files the inputs hold (None for
    one in memory or changed since it was read); an output goes over none of
    the files they came from."""
    pf, ppath, pfrom = _input(book, Book, "xm_portfolio", lib.xm_portfolio_read, lib.xm_portfolio_free,
                       lib.xm_portfolio_validate, "book", keep)
    sf, spath, sfrom = _input(scenarios, Scenarios, "xm_scenario_file", lib.xm_scenarios_read, lib.xm_scenarios_free,
                       lib.xm_scenarios_validate, "scenarios", keep)
    return pf, sf, ppath, spath, (pfrom, sfrom)


def _config_overrides(kw):
    """Keyword arguments that are configuration keys: section__key -> section.key."""
    return {k.replace("__", "."): v for k, v in kw.items()}


def run(book, scenarios, config=None, device="auto", save_pnl=False, save_scenarios=False,
        output=None, threads=0, mem_limit=0, accounts=None, **set):
    """Runs every scenario set of the configuration on a book (a Book or a
    portfolio file) and scenarios (a Scenarios or a scenario file); returns the results as an
    xarray.Dataset (the layout of read_results). config: an INI path or a
    dict {key: value}; further keywords are configuration keys too
    (montecarlo__scenarios=2000 is montecarlo.scenarios = 2000). output: also
    write the results file there (atomically, never over an input).
    accounts: a range (or slice) of the book's account rows, with step 1: only
    those are run, on the whole book's scenario sets, each row bit for bit
    what the whole run gives it (how a job split across processes, with
    mpi4py say, takes its share; docs/scaling.md); not with output."""
    t0 = time.perf_counter()
    cfg = make_config(config, _config_overrides(set))
    ctx = context_for(device, threads=threads, mem_limit=mem_limit)
    keep = []
    pf, sf, ppath, spath, sources = _open_inputs(book, scenarios, keep)
    if output is not None:
        err = ffi.new("char[]", 1024)
        ins = [cstr(x) if x else ffi.NULL for x in sources]
        arr = ffi.new("char *[]", ins)
        st = lib.xm_output_check(cstr(output), arr, 2, err, 1024)
        if st != XM_OK:
            raise_status(st, "output %s" % os.fspath(output), [ffi.string(err).decode()])
    opts = ffi.new("xm_run_opts *")
    opts.save_pnl = 1 if save_pnl else 0
    opts.save_scenarios = 1 if save_scenarios else 0
    if accounts is not None:
        r = accounts if isinstance(accounts, range) else range(*accounts.indices(pf.n_accounts)) \
            if isinstance(accounts, slice) else None
        if r is None or r.step != 1 or r.start < 0 or r.stop > pf.n_accounts or r.start >= r.stop:
            raise ValueError("accounts: a non-empty range of step 1 within the book's %d accounts, "
                             "not %r" % (pf.n_accounts, accounts))
        if output is not None:
            raise ValueError("accounts: a part of the book is not a results file (no output=)")
        opts.account_begin, opts.account_end = r.start, r.stop
    res = ffi.gc(ffi.new("xm_run_result *"), lib.xm_run_result_free)
    st = lib.xm_run(ctx._ctx, pf, sf, cfg, opts, res)
    if st != XM_OK:
        raise_status(st, "xm_run", detail=ctx.last_error())
    elapsed = time.perf_counter() - t0
    device_text = ctx.device_text()
    if output is not None:
        meta = ffi.new("xm_run_meta *")
        mk = [cstr(ppath or ""), cstr(spath or ""), cstr(device_text)]
        meta.portfolio, meta.scenarios, meta.device = mk
        meta.elapsed_s = elapsed
        with Diag() as d:
            st = lib.xm_run_result_write(cstr(output), pf, cfg, res, meta, d.ptr)
            if st != XM_OK:
                raise_status(st, "writing %s" % os.fspath(output), d.messages())
    ds = _from_result(res, pf, cfg, device_text, ppath, spath, elapsed)
    ds.attrs["notes"] = ffi.string(res.notes).decode()
    ds.attrs["choice"] = ctx.choice
    return ds


def _from_result(r, pf, cfg, device_text, ppath, spath, elapsed):
    A, G, K, F = r.A, r.G, r.K, r.F
    a0 = r.account_begin  # a run of some of the book's accounts: rows a0 .. a0 + A
    acc = strings(pf.account_id + a0, A)
    silo = strings(pf.silo_name, G)
    sets = [string(r.sets[k].name) for k in range(K)]
    rep = string(pf.currency)
    acur = strings(pf.account_currency + a0, A) if pf.account_currency != ffi.NULL else [None] * A
    currency = [c if c is not None else rep for c in acur]
    shapes = {("account",): (A,), ("account", "set"): (A, K), ("account", "silo"): (A, G)}
    margin = {}
    for name, dims, _ in MARGIN:
        field = name
        margin[name] = array_out(getattr(r, field), int(np.prod(shapes[dims])), np.float64, shapes[dims])
    labels, pnl, shock = {}, {}, {}
    for k in range(K):
        s = r.sets[k]
        labels[sets[k]] = strings(s.labels, s.S)
        if s.pnl != ffi.NULL:
            pnl[sets[k]] = array_out(s.pnl, s.S * A, np.float32, (s.S, A))
        if s.shock != ffi.NULL:
            shock[sets[k]] = array_out(s.shock, s.S * F, np.float64, (s.S, F))
    attrs = {"format": "xmargin.results", "format_version": 2,
             "software_version": _version(),
             "valuation_date": string(pf.valuation_date), "reporting_currency": rep,
             "portfolio": ppath or "", "scenarios": spath or "", "config": config_text(cfg),
             "device": device_text, "precision": "single" if cfg.precision == 1 else "double",
             "seed": int(cfg.montecarlo.seed), "elapsed_s": elapsed}
    return _dataset(acc, silo, sets, margin, array_out(r.binding, A, np.int32),
                    array_out(r.minimum_binds, A, np.int32), currency, labels, pnl, shock,
                    strings(r.factor, F) if F else [], attrs)


def _version():
    from . import __version__

    return __version__


def _s(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray) and v.dtype.kind in "OSU":
        return [_s(x) for x in v.ravel()]
    if isinstance(v, np.ndarray) and v.size == 1 and v.ndim == 1:
        return v[0]
    return v


def _attr(v):
    v = _s(v)
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_results(path):
    """A results file (FORMAT.md section 3) as the Dataset run() returns."""
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError("read_results: %s: no such file" % path, "EIO")
    with h5py.File(path, "r") as f:
        fmt = _attr(f.attrs.get("format", ""))
        if fmt != "xmargin.results":
            raise FormatError("read_results: %s: attribute format = %r: not an xmargin.results file" % (path, fmt),
                              "EFORMAT")
        strs = lambda d: [_s(x) for x in d[()]] if d.shape != () else [_s(d[()])]
        acc = strs(f["account"])
        silo = strs(f["silo"])
        sets = strs(f["set"]) if "set" in f else []
        g = f["margin"]
        margin = {n: np.asarray(g[n][()], np.float64) for n, _, _ in MARGIN if n in g}
        currency = strs(g["currency"])
        binding = np.asarray(g["binding_set"][()], np.int32)
        minimum_binds = np.asarray(g["minimum_binds"][()], np.int32) if "minimum_binds" in g else None
        labels, pnl, shock, factor = {}, {}, {}, None
        for s in sets:
            if "scenarios" in f and s in f["scenarios"]:
                gs = f["scenarios"][s]
                labels[s] = strs(gs["label"])
                if "shock" in gs:
                    shock[s] = np.asarray(gs["shock"][()], np.float64)
                    factor = strs(gs["factor"])
            if "pnl" in f and s in f["pnl"]:
                pnl[s] = np.asarray(f["pnl"][s][()], np.float32)
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        ds = _dataset(acc, silo, sets, margin, binding, minimum_binds, currency, labels, pnl, shock, factor, attrs)
        # the attributes as the file has them (units, long_name, flags)
        for n in list(ds.data_vars):
            src = g.get(n) if n in g else None
            if n.startswith("pnl_"):
                src = f["pnl"][n[4:]]
            if src is not None:
                ds[n].attrs = {k: _attr(v) for k, v in src.attrs.items()
                               if k not in ("DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME")}
    return ds


def validate(what):
    """Checks a portfolio or scenario file (by its `format` attribute), or a
    Book, against the data contract: returns the kind ("xmargin.portfolio",
    "xmargin.scenarios") when valid, else raises FormatError with the
    library's messages (those `xmargin validate` prints)."""
    if isinstance(what, Book):
        what.validate()
        return "xmargin.portfolio"
    if isinstance(what, Scenarios):
        what.validate()
        return "xmargin.scenarios"
    path = os.fspath(what)
    buf = ffi.new("char[]", 128)
    ver = ffi.new("int *")
    with Diag() as d:
        st = lib.xm_file_kind(cstr(path), buf, 128, ver, d.ptr)
        if st != XM_OK:
            raise_status(st, "%s" % path, d.messages())
        kind = ffi.string(buf).decode()
        if kind == "xmargin.portfolio":
            p = ffi.new("xm_portfolio *")
            st = lib.xm_portfolio_read(cstr(path), p, d.ptr)
            lib.xm_portfolio_free(p)
        elif kind == "xmargin.scenarios":
            s = ffi.new("xm_scenario_file *")
            st = lib.xm_scenarios_read(cstr(path), s, d.ptr)
            lib.xm_scenarios_free(s)
        else:  # the messages `xmargin validate` prints (host/cli/cli_validate.c)
            msg = ("%s: /: attribute format is missing or not a string: cannot tell the kind of file (must be "
                   "\"xmargin.portfolio\" or \"xmargin.scenarios\")" % path if not kind else
                   "%s: /: attribute format = '%.64s': validate checks \"xmargin.portfolio\" and "
                   "\"xmargin.scenarios\" files" % (path, kind))
            raise FormatError("%s: input violates the xmargin data contract (XM_EFORMAT)" % path, "EFORMAT",
                              [msg])
        if st != XM_OK:
            raise_status(st, path, d.messages())
    return kind


class Prepared:
    """A book prepared for what-ifs (xm_prepare): its scenario sets made once
    (Monte Carlo drawn once on the device), kept for the life of this object.
    whatif() gives one account's outputs with candidate trades added, equal to
    that account's row of a full run of the modified book."""

    def __init__(self, book, scenarios, config=None, device="auto", threads=0, mem_limit=0, **set):
        self._cfg = make_config(config, _config_overrides(set))
        self._ctx = context_for(device, threads=threads, mem_limit=mem_limit)
        self._keep = []
        self._pf, self._sf, self._ppath, self._spath, _ = _open_inputs(book, scenarios, self._keep)
        out = ffi.new("xm_prepared **")
        st = lib.xm_prepare(self._ctx._ctx, self._pf, self._sf, self._cfg, out)
        if st != XM_OK:
            raise_status(st, "xm_prepare", detail=self._ctx.last_error())
        self._p = ffi.gc(out[0], lib.xm_prepared_free)
        self.accounts = strings(self._pf.account_id, self._pf.n_accounts)
        self.instruments = strings(self._pf.inst_id, self._pf.n_instruments)
        self._acc = {a: i for i, a in enumerate(self.accounts)}
        self._ins = {a: i for i, a in enumerate(self.instruments)}

    def _trades(self, account, trades):
        if account not in self._acc:
            raise Error("what-if: %r is not an account of the book" % (account,))
        if hasattr(trades, "columns"):
            trades = list(zip(trades["instrument"], trades["quantity"]))
        trades = list(trades)
        t = ffi.new("xm_trade[]", max(len(trades), 1))
        for j, (ins, q) in enumerate(trades):
            if ins not in self._ins:
                raise Error("what-if: trade %d: %r is not an instrument of the book" % (j, ins))
            t[j].instrument, t[j].quantity = self._ins[ins], float(q)
        return self._acc[account], t, len(trades)

    def contributions(self, account, trades=()):
        """Each position's contribution to the account's binding-set measure
        with the trades added (Euler allocation by the set's tail scenarios;
        they add up to the measure): a DataFrame with columns instrument,
        quantity, contribution, one row per net position."""
        import pandas as pd

        a, t, n = self._trades(account, trades)
        out = ffi.new("xm_contribution **")
        cnt = ffi.new("int64_t *")
        st = lib.xm_whatif_contributions(self._p, a, t, n, out, cnt)
        if st != XM_OK:
            raise_status(st, "xm_whatif_contributions", detail=self._ctx.last_error())
        try:
            rows = [(self.instruments[out[0][q].instrument], out[0][q].quantity, out[0][q].contribution)
                    for q in range(cnt[0])]
        finally:
            lib.free(out[0])
        return pd.DataFrame(rows, columns=["instrument", "quantity", "contribution"])

    def whatif(self, account, trades=()):
        """account: an account id; trades: (instrument id, quantity) pairs, or
        a DataFrame with columns instrument and quantity. Returns the
        Dataset of run() for that one account (with attrs seconds: the
        what-if's time)."""
        a, t, n = self._trades(account, trades)
        res = ffi.gc(ffi.new("xm_run_result *"), lib.xm_run_result_free)
        t0 = time.perf_counter()
        st = lib.xm_whatif(self._p, a, t, n, res)
        seconds = time.perf_counter() - t0
        if st != XM_OK:
            raise_status(st, "xm_whatif", detail=self._ctx.last_error())
        one = ffi.new("xm_portfolio *")
        one[0] = self._pf[0]
        one.n_accounts = 1
        one.account_id = self._pf.account_id + a
        one.account_cross_margin = self._pf.account_cross_margin + a
        if self._pf.account_currency != ffi.NULL:
            one.account_currency = self._pf.account_currency + a
        ds = _from_result(res, one, self._cfg, self._ctx.device_text(), self._ppath, self._spath,
                          seconds)
        ds.attrs["seconds"] = seconds
        ds.attrs["trades"] = n
        return ds


def prepare(book, scenarios, config=None, device="auto", threads=0, mem_limit=0, **set):
    """A Prepared book (see Prepared) for what-ifs."""
    return Prepared(book, scenarios, config, device, threads, mem_limit, **set)
