"""Scenarios in memory (FORMAT.md section 2): a history and ready-made sets
built in a session (from DataFrames or arrays) and run without a file. The
library sees them as views (an xm_scenario_file over these arrays, no copy
where the layout allows) and checks them with xm_scenarios_validate: the
rules and messages of `xmargin validate`, the file named "(in memory)".

Owns: its numpy arrays and names; a view lives as long as the keep list the
caller holds."""

import math
import os

import numpy as np

from ._core import (Diag, FormatError, XM_OK, array_in, array_out, cstr, ffi, fingerprint, lib, raise_status,
                    strings, strings_in, write_checked)

def _measures():
    """{name: xm_measure} in XM_MEASURE_MAP's order (xm_measure_name: NULL past the last)."""
    out, m = {}, 0
    while lib.xm_measure_name(m) != ffi.NULL:
        out[ffi.string(lib.xm_measure_name(m)).decode()] = m
        m += 1
    return out


MEASURES = _measures()


class Scenarios:
    """A scenario file's contents: Scenarios(history=None, sets=None).

    history: a DataFrame, one row per day, oldest first (index: dates, as
    datetimes or "YYYY-MM-DD"), one column per factor (the day's return:
    log-return for price and logvol factors, absolute change for vol and
    rate factors).
    sets: {name: DataFrame [S x F_s]} (index: the scenario labels; columns:
    the factors it moves) or {name: dict(shock=..., factor=..., label=...,
    weight=None, measure="worst", confidence=None)} where shock is such a
    DataFrame or a 2-D array (then factor and label name its columns and
    rows). measure: "worst", "es" or "var"; confidence None is the run's.

    Anywhere a scenario file's path is taken (run, prepare), a Scenarios is
    too. Scenarios.read(path) reads a file into one (validated); to_hdf5
    writes one."""

    def __init__(self, history=None, sets=None):
        self.path = None
        self.factor, self.date, self.ret = [], [], np.zeros((0, 0))
        if history is not None:
            self.factor = [str(c) for c in history.columns]
            self.date = [_iso(d) for d in history.index]
            self.ret = np.asarray(history.to_numpy(dtype=np.float64))
        # in name order, as a file holds them (HDF5 lists a group by name): the
        # same run, binding_set and all, from the Scenarios and from its file
        self.sets = {str(k): _set(str(k), v) for k, v in sorted((sets or {}).items(), key=lambda kv: str(kv[0]))}

    @classmethod
    def read(cls, path):
        """Reads and validates a scenario file (xm_scenarios_read), copied into numpy."""
        sf = ffi.gc(ffi.new("xm_scenario_file *"), lib.xm_scenarios_free)
        with Diag() as d:
            st = lib.xm_scenarios_read(cstr(path), sf, d.ptr)
            if st != XM_OK:
                raise_status(st, "reading %s" % os.fspath(path), d.messages())
        s = cls()
        s.path = os.fspath(path)
        T, F = sf.n_days, sf.n_hfactors
        if T > 0:
            s.factor, s.date = strings(sf.hist_factor, F), strings(sf.hist_date, T)
            s.ret = array_out(sf.hist_return, T * F, np.float64, (T, F))
        for k in range(sf.n_sets):
            r = sf.sets[k]
            S, Fs = r.n_scenarios, r.n_factors
            conf = float(r.confidence)
            s.sets[ffi.string(r.name).decode()] = dict(
                factor=strings(r.factor, Fs), shock=array_out(r.shock, S * Fs, np.float64, (S, Fs)),
                label=strings(r.label, S), weight=array_out(r.weight, S, np.float64),
                measure=ffi.string(lib.xm_measure_name(r.measure)).decode(),
                confidence=None if math.isnan(conf) else conf)
        s._read_as = s._fingerprint()
        return s

    def _fingerprint(self):
        return fingerprint(self.factor, self.date, np.asarray(self.ret), self.sets)

    def source(self):
        """The file these scenarios are exactly the contents of: its path when
        read (Scenarios.read) and not changed since, else None (what a results
        file records as the run's scenarios)."""
        same = self.path is not None and getattr(self, "_read_as", None) == self._fingerprint()
        return self.path if same else None

    def history_frame(self):
        """The history as a DataFrame (index: the dates, columns: the factors)."""
        import pandas as pd

        return pd.DataFrame(self.ret, index=pd.Index(self.date, name="date"), columns=self.factor)

    def _view(self):
        """(xm_scenario_file *, keepalive): a view over the arrays."""
        sf = ffi.new("xm_scenario_file *")
        keep = [sf]
        if self.path is not None:
            keep.append(cstr(self.path))
            sf.path = keep[-1]
        ret = np.asarray(self.ret, dtype=np.float64)
        if self.date:
            if ret.shape != (len(self.date), len(self.factor)):
                raise FormatError("scenarios (in memory): the history's returns are %s, not %d days x %d factors"
                                  % (ret.shape, len(self.date), len(self.factor)), "")
            sf.n_days, sf.n_hfactors = len(self.date), len(self.factor)
            sf.hist_factor = strings_in(self.factor, keep)
            sf.hist_date = strings_in(self.date, keep)
            sf.hist_return = array_in(ret, np.float64, keep)
        sets = ffi.new("xm_scenario_set[]", max(len(self.sets), 1))
        keep.append(sets)
        for k, (name, s) in enumerate(self.sets.items()):
            r = sets[k]
            keep.append(cstr(name))
            r.name = keep[-1]
            shock = np.asarray(s["shock"], dtype=np.float64)
            r.n_scenarios, r.n_factors = len(s["label"]), len(s["factor"])
            if shock.shape != (r.n_scenarios, r.n_factors):
                raise FormatError("scenarios (in memory): set %s: shock is %s, not %d labels x %d factors"
                                  % (name, shock.shape, r.n_scenarios, r.n_factors), "")
            r.factor = strings_in(s["factor"], keep)
            r.label = strings_in(s["label"], keep)
            r.shock = array_in(shock, np.float64, keep)
            r.weight = ffi.NULL if s["weight"] is None else array_in(s["weight"], np.float64, keep)
            r.measure = MEASURES[s["measure"]]
            r.confidence = float("nan") if s["confidence"] is None else float(s["confidence"])
        sf.n_sets = len(self.sets)
        sf.sets = sets
        return sf, keep

    def to_hdf5(self, path, validate=True):
        """Writes the scenarios (FORMAT.md section 2) with xm_scenarios_write,
        atomically, never over the file they were read from; validated first
        unless validate=False."""
        if validate:
            self.validate()
        write_checked(path, self.path, self._view, lib.xm_scenarios_write)

    def validate(self, raise_error=True):
        """xm_scenarios_validate: [] when valid; else raises FormatError with
        the library's messages (or returns them with raise_error=False)."""
        sf, keep = self._view()
        with Diag() as d:
            st = lib.xm_scenarios_validate(sf, d.ptr)
            msgs = d.messages()
        del keep
        if st != XM_OK:
            if raise_error:
                raise_status(st, "scenarios %s" % (self.path or "(in memory)"), msgs)
            return msgs
        return []


def _iso(d):
    import pandas as pd

    if isinstance(d, str):
        return d
    return pd.Timestamp(d).strftime("%Y-%m-%d")


def _set(name, spec):
    """One set's dict from a DataFrame or a dict (see Scenarios)."""
    if not isinstance(spec, dict):
        spec = {"shock": spec}
    shock = spec.get("shock")
    if shock is None:
        raise FormatError("scenarios (in memory): set %s has no shock" % name, "")
    if hasattr(shock, "columns"):  # a DataFrame: its columns and index name it
        factor = [str(c) for c in shock.columns]
        label = [str(x) for x in shock.index]
        shock = shock.to_numpy(dtype=np.float64)
    else:
        factor, label = spec.get("factor"), spec.get("label")
        if factor is None or label is None:
            raise FormatError("scenarios (in memory): set %s: a shock array needs factor= and label=" % name, "")
        factor, label = [str(x) for x in factor], [str(x) for x in label]
    measure = spec.get("measure", "worst")
    if measure not in MEASURES:
        raise FormatError("scenarios (in memory): set %s: measure %r: must be one of %s"
                          % (name, measure, ", ".join(MEASURES)), "")
    weight = spec.get("weight")
    return dict(factor=factor, shock=np.asarray(shock, dtype=np.float64), label=label,
                weight=None if weight is None else np.asarray(weight, dtype=np.float64), measure=measure,
                confidence=spec.get("confidence"))
