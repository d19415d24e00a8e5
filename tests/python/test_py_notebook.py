"""examples/margin.ipynb runs top to bottom (issue 16, item 4 without the
what-if): executed by nbclient in a fresh kernel (/usr/bin/python3 with this
checkout's python/ and the build's library), every cell without an error,
and its figures there (image/png outputs: requirement per account, one
account's loss distribution, hedge credit by template). Exits 77 (skipped)
only when nbclient or nbformat is not installed."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_pyhelp as H  # noqa: E402

H.setup()
T = H.T
try:
    import nbclient
    import nbformat
except ImportError as e:
    T.skip_script("nbclient / nbformat not installed (Debian python3-nbclient): %s" % e)

t = T.Tally()
NB = os.path.join(H.SOURCE_DIR, "examples", "margin.ipynb")


def test_notebook():
    saved = dict(os.environ)
    try:
        run_notebook()
    finally:  # the kernel's environment, not the next test's
        os.environ.clear()
        os.environ.update(saved)


def run_notebook():
    nb = nbformat.read(NB, as_version=4)
    t.check("the notebook is committed without outputs",
            all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"))
    os.environ["PYTHONPATH"] = os.pathsep.join([os.path.join(H.SOURCE_DIR, "python")] +
                                               [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ["XM_DATA_DIR"] = os.path.join(H.SOURCE_DIR, "datasets")
    os.environ["PATH"] = "/usr/bin:" + os.environ.get("PATH", "")
    os.environ.update(H.python_env(os.environ))  # the kernel's (ASan without leak detection in that build)
    try:
        client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                         resources={"metadata": {"path": os.path.dirname(NB)}})
        client.execute()
        ran = True
    except Exception as e:  # CellExecutionError names the cell and the traceback
        ran = False
        t.check("the notebook runs top to bottom", False, str(e)[-3000:])
    if ran:
        t.check("the notebook runs top to bottom", True)
        code = [c for c in nb.cells if c.cell_type == "code"]
        errors = [o for c in code for o in c.outputs if o.output_type == "error"]
        t.check("no cell has an error output", not errors, errors[:1])
        pngs = [c for c in code if any("image/png" in o.get("data", {}) for o in c.outputs)]
        t.check("three cells draw a figure (image/png)", len(pngs) == 3, len(pngs))
        big = [len(o["data"]["image/png"]) for c in pngs for o in c.outputs if "image/png" in o.get("data", {})]
        t.check("each figure is a real image (> 10 kB of base64)", big and min(big) > 10000, big)
        text = "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")
        t.check("the run's device choice and the engine's measure are printed",
                "device:" in text and "by_set historical" in text, text[-500:])


if __name__ == "__main__":
    t.run(test_notebook)
    t.finish()
