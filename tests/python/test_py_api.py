"""The Python package against the library and the CLI (issue 16, item 1):
the cffi declarations match the header (sizeof / offsetof of every struct,
compiled here), xmargin.run equals `xmargin run` on the same files (every
variable, its attributes, the written file), books as views without copies,
the errors and their messages, devices."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_pyhelp as H  # noqa: E402

xm = H.setup()
import numpy as np  # noqa: E402
import h5py  # noqa: E402

T = H.T
t = T.Tally()
from xmargin._lib import ffi  # noqa: E402

STRUCTS = ["xm_device_info", "xm_options", "xm_config", "xm_diag", "xm_portfolio", "xm_scenario_set",
           "xm_scenario_file", "xm_run_opts", "xm_run_set", "xm_run_result", "xm_run_meta"]


def fields_of(ctype, prefix=()):
    out = []
    for name, f in ctype.fields:
        path = prefix + (name,)
        out.append(path)
        if f.type.kind == "struct":
            out += fields_of(f.type, path)
    return out


def test_layout(tmp):
    """A C program over the real header prints each struct's size and each
    field's offset; the cffi declarations (_cdef.h) must agree."""
    lines, expect = [], []
    for s in STRUCTS:
        lines.append('printf("%%zu\\n", sizeof(%s));' % s)
        expect.append(ffi.sizeof(s))
        for path in fields_of(ffi.typeof(s)):
            lines.append('printf("%%zu\\n", offsetof(%s, %s));' % (s, ".".join(path)))
            expect.append(ffi.offsetof(s, *path))
    from xmargin import _book

    # the type table in the header's order (the enum's): no library call, so the
    # program links nothing (a sanitizer build's library would need its runtime)
    lines.append('for (int t = 0; t < XM_TYPE_COUNT; t++) printf("%d %d %s\\n", XM_TYPE_IS_OPTION(t), '
                 'XM_TYPE_HAS_CARRY(t), xm__names[t]);')
    lines.append('printf("%s\\n", XM_VERSION_STRING);')
    src = os.path.join(tmp, "layout.c")
    with open(src, "w") as f:
        f.write("#include <stddef.h>\n#include <stdio.h>\n#include \"xmargin.h\"\n"
                "#define XM__N(NAME, name, loss, ca, se, fu, in, pr, v) name,\n"
                "static const char *const xm__names[] = {XM_INSTRUMENT_TYPE_MAP(XM__N)};\n"
                "int main(void) {\n%s\nreturn 0;\n}\n" % "\n".join(lines))
    exe = os.path.join(tmp, "layout")
    p = subprocess.run(["cc", "-std=c11", "-I", os.path.join(H.SOURCE_DIR, "host", "include"), src, "-o", exe],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if not t.check("the layout program compiles against xmargin.h", p.returncode == 0, p.stdout.decode()[-2000:]):
        return
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)  # a sanitizer library brings its own runtime into a C program
    run = subprocess.run([exe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = run.stdout.decode().split("\n")
    n = len(expect)
    ran = run.returncode == 0 and len(out) > n + len(_book.TYPES)
    if not t.check("the layout program runs", ran, "" if ran else run.stdout.decode()[-1000:]):
        return
    got = [int(x) for x in out[:n]]
    bad = [(i, g, e) for i, (g, e) in enumerate(zip(got, expect)) if g != e]
    t.check("sizeof and offsetof of %d structs (%d numbers) equal the header's" % (len(STRUCTS), n),
            len(got) == n and not bad, bad[:5])
    rows = out[n:n + len(_book.TYPES)]
    table = ["%d %d %s" % (int(nm in _book.OPTION_TYPES), int(nm in _book.CARRY_TYPES), nm) for nm in _book.TYPES]
    t.check("the binding's option / carry table is XM_INSTRUMENT_TYPE_MAP's", rows == table, (rows, table))
    t.check("__version__ is XM_VERSION_STRING", out[n + len(_book.TYPES)] == xm.__version__,
            out[n + len(_book.TYPES)])


def same_dataset(name, a, b, exact=True):
    """Every variable, coordinate and variable attribute of a equals b's."""
    ok = t.check(name + ": the same variables", sorted(a.data_vars) == sorted(b.data_vars),
                 (sorted(set(a.data_vars) ^ set(b.data_vars))))
    for c in ("account", "silo", "set"):
        t.check(name + ": coordinate " + c, list(a[c].values) == list(b[c].values))
    bad = []
    for v in sorted(set(a.data_vars) & set(b.data_vars)):
        x, y = a[v], b[v]
        if x.dims != y.dims or x.shape != y.shape:
            bad.append((v, "dims", x.dims, y.dims))
            continue
        if x.dtype.kind in "fi":
            if x.dtype != y.dtype or not np.array_equal(x.values, y.values, equal_nan=True):
                bad.append((v, "values", x.dtype, y.dtype))
        elif list(x.values) != list(y.values):
            bad.append((v, "values"))
        ka = {k: (list(np.ravel(w)) if isinstance(w, np.ndarray) else w) for k, w in x.attrs.items()}
        kb = {k: (list(np.ravel(w)) if isinstance(w, np.ndarray) else w) for k, w in y.attrs.items()}
        if ka != kb:
            bad.append((v, "attrs", ka, kb))
    for c in a.coords:
        if c.startswith("scenario_") and (c not in b.coords or list(a[c].values) != list(b[c].values)):
            bad.append((c, "labels"))
    return t.check(name + ": every variable, its attributes and the scenario labels equal", ok and not bad, bad[:4])


def test_run_vs_cli(tmp):
    over = {"montecarlo.scenarios": 2000}
    out = os.path.join(tmp, "cli.h5")
    rc, _, err, sec = T.margin_run(H.DEMO_P, H.DEMO_S, out, device="cpu",
                                   sets=["%s=%s" % kv for kv in over.items()], extra=["--save-pnl"])
    if not t.check("xmargin run on the demo", rc == 0, err[-800:]):
        return
    cli = xm.read_results(out)
    py = xm.run(H.DEMO_P, H.DEMO_S, config=over, device="cpu", save_pnl=True,
                output=os.path.join(tmp, "py.h5"))
    same_dataset("run() == read_results(xmargin run's file)", py, cli)
    same_dataset("read_results(run()'s file) == read_results(xmargin run's file)",
                 xm.read_results(os.path.join(tmp, "py.h5")), cli)
    for k in ("format", "format_version", "software_version", "valuation_date", "reporting_currency",
              "config", "device", "precision", "seed", "portfolio_sha256", "scenarios_sha256"):
        if k in py.attrs:
            t.check("attribute %s as the file has it" % k, py.attrs[k] == cli.attrs[k],
                    (str(py.attrs[k])[:80], str(cli.attrs[k])[:80]))
    with h5py.File(out, "r") as f, h5py.File(os.path.join(tmp, "py.h5"), "r") as g:
        names = []
        f.visit(names.append)
        bad = [n for n in names if isinstance(f[n], h5py.Dataset) and
               (n not in g or not np.array_equal(np.asarray(f[n][()]), np.asarray(g[n][()])))]
        t.check("run(output=) writes the datasets xmargin run writes (%d)" % len(names), not bad, bad[:5])
    # the same book as a Book (a view over numpy arrays), and keyword configuration
    book = xm.Book.read(H.DEMO_P)
    py2 = xm.run(book, H.DEMO_S, device="cpu", montecarlo__scenarios=2000, save_pnl=True)
    t.check("a Book gives the same requirements as its file",
            np.array_equal(py2.requirement.values, cli.requirement.values))
    t.check("a Book gives the same P&L as its file",
            all(np.array_equal(py2["pnl_" + s].values, cli["pnl_" + s].values) for s in cli.set.values))
    t.check("the Dataset is indexed by account id",
            float(py.requirement.sel(account=cli.account.values[3])) == float(cli.requirement.values[3]))
    t.check("binding_set's flags name the sets", py.binding_set.attrs["flag_meanings"].split() == list(cli.set.values))


def test_accounts():
    """run(accounts=range) (a process's share of a split job): the rows of the
    whole run bit for bit, the P&L's columns too; bad ranges and output= refused."""
    over = {"montecarlo.scenarios": 800}
    whole = xm.run(H.DEMO_P, H.DEMO_S, config=over, device="cpu", save_pnl=True)
    A = whole.sizes["account"]
    for r in (range(0, 7), range(7, A), slice(100, 140)):
        part = xm.run(H.DEMO_P, H.DEMO_S, config=over, device="cpu", save_pnl=True, accounts=r)
        rr = r if isinstance(r, range) else range(*r.indices(A))
        w = whole.isel(account=slice(rr.start, rr.stop))
        t.check("accounts=%r: the account ids of those rows" % (r,),
                list(part.account.values) == list(w.account.values))
        bad = [v for v in whole.data_vars if "account" in whole[v].dims and
               (v not in part or not T.same_bits(part[v].values, w[v].values))]
        t.check("accounts=%r: every per-account variable bit for bit the whole run's rows" % (r,),
                not bad, bad[:5])
    for r in (range(5, 5), range(0, A + 1), range(0, 10, 2), "3:5"):
        try:
            xm.run(H.DEMO_P, H.DEMO_S, config=over, device="cpu", accounts=r)
            t.check("accounts=%r refused" % (r,), False)
        except (ValueError, TypeError) as e:
            t.check("accounts=%r refused (ValueError)" % (r,), isinstance(e, ValueError), repr(e))
    with T.TmpDir() as tmp:
        try:
            xm.run(H.DEMO_P, H.DEMO_S, config=over, device="cpu", accounts=range(0, 3),
                   output=os.path.join(tmp, "part.h5"))
            t.check("accounts= with output= refused", False)
        except ValueError:
            t.check("accounts= with output= refused", not os.path.exists(os.path.join(tmp, "part.h5")))


def test_zero_copy():
    book = xm.Book.read(H.DEMO_P)
    p, keep = book._view()
    lvl = book.tables["factors"]["level"]
    qty = book.tables["positions"]["quantity"]
    t.check("a float64 column goes to the library without a copy",
            int(ffi.cast("uintptr_t", p.factor_level)) == lvl.ctypes.data and
            int(ffi.cast("uintptr_t", p.pos_quantity)) == qty.ctypes.data)
    t.check("an int32 column goes without a copy",
            int(ffi.cast("uintptr_t", p.pos_account)) == book.tables["positions"]["account"].ctypes.data)
    b2 = xm.Book(dict(book.tables), book.valuation_date, book.currency)
    b2.tables["positions"] = dict(book.tables["positions"],
                                  account=book.tables["positions"]["account"].astype(np.int64),
                                  quantity=np.asfortranarray(qty[::-1])[::-1])
    p2, keep2 = b2._view()
    t.check("an int64 or strided column is converted once (a copy), with the same values",
            int(ffi.cast("uintptr_t", p2.pos_account)) != b2.tables["positions"]["account"].ctypes.data and
            [p2.pos_account[i] for i in range(5)] == list(book.tables["positions"]["account"][:5]) and
            p2.pos_quantity[7] == qty[7])
    t.check("the converted book validates", b2.validate() == [])


def test_errors(tmp):
    try:
        xm.run(H.DEMO_P, H.DEMO_S, config={"montecarlo.scenarioz": 5}, device="cpu")
        t.check("an unknown configuration key raises", False)
    except xm.ConfigError as e:
        t.check("an unknown configuration key raises ConfigError naming it", "scenarioz" in str(e), str(e))
    try:
        xm.run(H.DEMO_P, H.DEMO_S, confidence=1.5, device="cpu")
        t.check("a value out of range raises", False)
    except xm.ConfigError as e:
        t.check("a value out of range raises ConfigError naming key and value",
                "confidence" in str(e) and "1.5" in str(e), str(e))
    try:
        xm.run(H.DEMO_P, H.DEMO_S, device="opencl:9.9")
        t.check("a device that is not there raises", False)
    except xm.DeviceError as e:
        t.check("a device that is not there raises DeviceError", e.status in ("ENODEV", "EINVAL", "EOPENCL"), str(e))
    except xm.Error as e:
        t.check("a device that is not there raises an xmargin.Error", True, str(e))
    missing = os.path.join(tmp, "nope.h5")
    try:
        xm.run(missing, H.DEMO_S, device="cpu")
        t.check("a missing portfolio raises", False)
    except xm.FormatError as e:
        t.check("a missing portfolio raises FormatError naming the file", "nope.h5" in str(e), str(e))
    # a bad file: the reader's messages, as xmargin validate prints them
    bad = os.path.join(tmp, "bad.h5")
    import shutil

    shutil.copy(H.DEMO_P, bad)
    with h5py.File(bad, "r+") as f:
        k = f["instruments/strike"][()]
        typ = [x.decode() if isinstance(x, bytes) else x for x in f["instruments/type"][()]]
        row = typ.index("option")
        k[row] = -5.0
        f["instruments/strike"][...] = k
    rc, _, err, _ = T.run_xm(["validate", bad])
    try:
        xm.validate(bad)
        t.check("validate() raises on a bad file", False)
    except xm.FormatError as e:
        cli_msgs = [ln for ln in err.splitlines() if "/instruments/" in ln]
        t.check("validate() carries the messages xmargin validate prints (file, dataset, row, rule)",
                rc == 2 and cli_msgs and all(m in e.messages for m in cli_msgs) and
                any("/instruments/strike[%d]" % row in m for m in e.messages), (cli_msgs, e.messages))
    try:
        xm.run(bad, H.DEMO_S, device="cpu")
        t.check("run() on a bad file raises", False)
    except xm.FormatError as e:
        t.check("run() on a bad file raises FormatError with the reader's message",
                any("strike" in m and "bad.h5" in m for m in e.messages), str(e))
    try:
        xm.run(H.DEMO_P, H.DEMO_S, device="cpu", output=H.DEMO_S, montecarlo__scenarios=100)
        t.check("an output over an input is refused", False)
    except xm.Error as e:
        t.check("an output over an input is refused before the run", "input" in str(e), str(e))
    t.check("validate() names the kind of a valid file",
            xm.validate(H.DEMO_P) == "xmargin.portfolio" and xm.validate(H.DEMO_S) == "xmargin.scenarios")


def test_devices():
    d = xm.devices()
    t.check("devices() lists the cpu backend last", d and d[-1]["spec"] == "cpu", [x["spec"] for x in d])
    ocl = [x for x in d if x["backend"] == "opencl" and x["fp64"]]
    if not ocl:
        t.skip("a run on OpenCL against the cpu backend", "no OpenCL device with double precision")
        return
    with T.TmpDir() as tmp:
        sp = os.path.join(tmp, "s.h5")
        H.frames_scenarios(sp)
        book = xm.Book.from_frames(**H.frames_book(), valuation_date="2024-06-28")
        a = xm.run(book, sp, device="cpu", montecarlo__scenarios=500)
        b = xm.run(book, sp, device=ocl[0]["spec"], montecarlo__scenarios=500)
        t.close("device=%s gives the cpu backend's requirements" % ocl[0]["spec"], b.requirement.values,
                a.requirement.values, 1e-9, atol=1e-9)



if __name__ == "__main__":
    with T.TmpDir() as tmp:
        t.run(test_layout, tmp)
        t.run(test_run_vs_cli, tmp)
        t.run(test_accounts)
        t.run(test_zero_copy)
        t.run(test_errors, tmp)
        t.run(test_devices)
    t.finish()
