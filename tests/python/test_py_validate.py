"""Every validation rule reachable from Python (issue 16, item 5): each file
of test_io_validate.py, valid and malformed (its cases are one per rule of
FORMAT.md it covers: tables, columns, values, indices, version 2, corrupt and
hostile files), goes through xmargin.validate(path) as well as `xmargin
validate`. A file the CLI accepts, Python accepts (and names its kind); a
file the CLI rejects (exit 2), Python rejects with FormatError, and the
exception's messages are the CLI's lines, the same ones in the same order
(file, dataset, row and rule). test_io_validate's own checks of the CLI's
messages run as well."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xm_pyhelp as H  # noqa: E402

xm = H.setup()
import test_io_validate as iv  # noqa: E402

T = H.T
t = T.Tally()
iv.report = t.check  # the CLI's checks of test_io_validate count here
seen = {"accepted": 0, "rejected": 0}
cli_validate = iv.run_validate


def both_validate(*paths, env=None):
    """iv.run_validate, and the same file through xmargin.validate."""
    rc, out, err = cli_validate(*paths, env=env)
    if len(paths) != 1 or env is not None or paths[0].startswith("-"):
        return rc, out, err
    path = paths[0]
    name = os.path.basename(path)
    try:
        kind = xm.validate(path)
        got = ("accepted", kind, [])
    except xm.FormatError as e:
        got = ("rejected", None, list(e.messages))
    except xm.Error as e:
        got = ("other", type(e).__name__, [str(e)])
    cli_lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(path + ": INVALID")]
    if rc == 0:
        ok = got[0] == "accepted" and got[1] in out
    else:
        ok = rc == 2 and got[0] == "rejected" and got[2] == cli_lines
    seen[got[0] if got[0] in seen else "accepted"] += ok
    t.check("python validate(%s) agrees with the CLI (exit %d, %d messages)" % (name, rc, len(cli_lines)), ok,
            "" if ok else "python %r\ncli %r" % (got, cli_lines))
    return rc, out, err


iv.run_validate = both_validate


def test_every_rule(tmp):
    for part in (iv.check_valid, iv.check_bad, iv.check_v2, iv.check_corrupt):
        part(tmp)
    t.check("files through both: %d accepted, %d rejected" % (seen["accepted"], seen["rejected"]),
            seen["accepted"] >= 5 and seen["rejected"] >= 100, seen)


if __name__ == "__main__":
    with T.TmpDir() as tmp:
        t.run(test_every_rule, tmp)
    t.finish()
