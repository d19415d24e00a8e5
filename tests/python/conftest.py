"""pytest for the Python package's tests (test_py_*.py); the other test_*.py
are scripts that ctest runs as they are (pytest does not collect them).

Each test_py_ module keeps its checks in an xm_testlib.Tally `t`, so that it
also runs as a script (`python3 tests/python/test_py_api.py`). Under pytest:
- a test fails when one of its checks failed (its FAIL lines are in the
  captured output pytest shows);
- a test that could only skip is reported skipped, with the reasons;
- a session that ran nothing but skips exits 77, which ctest reports as
  skipped, not passed;
- `tmp` is a temporary folder (kept with XM_KEEP_TMP=1, as the scripts')."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_testlib as T  # noqa: E402


def pytest_ignore_collect(collection_path, config):
    name = collection_path.name
    return name.endswith(".py") and name.startswith("test_") and not name.startswith("test_py_")


@pytest.fixture
def tmp():
    with T.TmpDir("xm_pytest.") as d:
        yield d


@pytest.fixture(autouse=True)
def _tally(request):
    t = getattr(request.module, "t", None)
    if isinstance(t, T.Tally):
        request.node.xm_tally = (t, t.failed, t.passed, len(t.skipped))
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """The test's report from its checks: failed when one failed, skipped when
    it could only skip."""
    rep = (yield).get_result()
    if call.when != "call" or rep.outcome != "passed" or not hasattr(item, "xm_tally"):
        return
    t, failed, passed, skipped = item.xm_tally
    if t.failed > failed:
        rep.outcome = "failed"
        rep.longrepr = "%d of its checks failed (the FAIL lines in its output)" % (t.failed - failed)
    elif t.passed == passed and len(t.skipped) > skipped:
        rep.outcome = "skipped"
        why = "; ".join("%s (%s)" % s for s in t.skipped[skipped:])
        rep.longrepr = (str(item.path), item.location[1], "Skipped: " + why)


def pytest_sessionfinish(session, exitstatus):
    rep = session.config.pluginmanager.get_plugin("terminalreporter")
    if rep is None or exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        return
    if rep.stats.get("skipped") and not rep.stats.get("passed"):
        session.exitstatus = T.SKIP_RC
