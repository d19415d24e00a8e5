"""pip install of python/ (issue 16, item 1): into a virtual environment in a
temporary folder (--system-site-packages, for Debian's numpy, pandas, xarray,
h5py and cffi; --no-build-isolation: setuptools from Debian, no network), then
`import xmargin` and one run from outside the checkout; how the installed
package finds libxmargin.so ($XMARGIN_LIBRARY, next to the package, the
checkout's build tree)."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_pyhelp as H  # noqa: E402

H.setup()
T = H.T
t = T.Tally()

PROBE = r"""
import sys, xmargin
print("FILE", xmargin.__file__)
print("LIB", xmargin.library_path)
if len(sys.argv) > 1:
    ds = xmargin.run(sys.argv[1], sys.argv[2], device="cpu", montecarlo__scenarios=500)
    print("RUN", ds.sizes["account"], float(ds.requirement.sum()))
"""


def py(venv_python, args, env, cwd):
    p = subprocess.run([venv_python, "-c", PROBE] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, cwd=cwd, timeout=300)
    out = p.stdout.decode()
    vals = dict(ln.split(" ", 1) for ln in out.splitlines() if " " in ln)
    return p.returncode, vals, p.stderr.decode()



def test_install(tmp):
    venv = os.path.join(tmp, "venv")
    p = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    if not t.check("python3 -m venv --system-site-packages", p.returncode == 0, p.stdout.decode()[-1500:]):
        return
    vpy = os.path.join(venv, "bin", "python")
    env = H.python_env(os.environ)
    env.pop("PYTHONPATH", None)
    env["PIP_NO_INDEX"] = "1"  # everything comes from this machine
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    src = os.path.join(H.SOURCE_DIR, "python")
    p = subprocess.run([vpy, "-m", "pip", "install", "--no-build-isolation", src], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env, cwd=tmp, timeout=600)
    ok = t.check("pip install --no-build-isolation ./python into the venv", p.returncode == 0,
                 p.stdout.decode()[-2500:])
    if ok:
        work = os.path.join(tmp, "elsewhere")
        os.makedirs(work)
        lib = H.library()
        rc, v, err = py(vpy, [H.DEMO_P, H.DEMO_S], env, work)
        t.check("import xmargin from outside the checkout comes from the venv",
                rc == 0 and v.get("FILE", "").startswith(venv), (v, err[-1500:]))
        t.check("$XMARGIN_LIBRARY is the library it loads", v.get("LIB") == lib, v.get("LIB"))
        t.check("one run from the installed package (the demo, 340 accounts)",
                v.get("RUN", "").startswith("340 ") and float(v["RUN"].split()[1]) > 0, (v.get("RUN"), err[-800:]))
        # without $XMARGIN_LIBRARY: the checkout's build tree, as recorded at install time
        e2 = dict(env)
        e2.pop("XMARGIN_LIBRARY", None)
        built = os.path.join(H.SOURCE_DIR, "build", "libxmargin.so")
        rc, v, err = py(vpy, [], e2, work)
        if os.path.isfile(built):
            t.check("without XMARGIN_LIBRARY: <checkout>/build/libxmargin.so", rc == 0 and v.get("LIB") == built,
                    (v, err[-800:]))
        else:
            t.check("without XMARGIN_LIBRARY and no build/ tree: ImportError listing where it looked",
                    rc != 0 and "XMARGIN_LIBRARY" in err and "build" in err, err[-800:])
        # a copy next to the package comes before the build tree
        pkg = os.path.dirname(v.get("FILE", "")) if v.get("FILE") else None
        if pkg is None:
            rc0, v0, _ = py(vpy, [], env, work)
            pkg = os.path.dirname(v0.get("FILE", ""))
        shutil.copy(lib, os.path.join(pkg, "libxmargin.so"))
        rc, v, err = py(vpy, [], e2, work)
        t.check("libxmargin.so next to the package is taken first",
                rc == 0 and v.get("LIB") == os.path.join(pkg, "libxmargin.so"), (v, err[-800:]))
        e3 = dict(env, XMARGIN_LIBRARY=os.path.join(tmp, "no-such-lib.so"))
        rc, v, err = py(vpy, [], e3, work)
        t.check("a wrong XMARGIN_LIBRARY is an ImportError naming it", rc != 0 and "no-such-lib.so" in err,
                err[-600:])


if __name__ == "__main__":
    with T.TmpDir() as tmp:
        t.run(test_install, tmp)
    t.finish()
