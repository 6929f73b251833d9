"""conformance/pjdfstest.py's reading of prove's output (no pjdfstest needed)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "pjdfstest_harness", Path(__file__).resolve().parent.parent / "conformance" / "pjdfstest.py")
assert _SPEC and _SPEC.loader
harness = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = harness      # dataclasses look their module up
_SPEC.loader.exec_module(harness)

# prove -v -r output as prove 3.x prints it (files, TAP lines, verdicts, summary)
PROVE = """\
/p/tests/chflags/00.t ...... 
1..0 # SKIP chflags is not supported
skipped: chflags is not supported
/p/tests/chmod/00.t ........ 
1..4
ok 1
not ok 2 - tried 'chmod pjdfstest_x 0644', expected 0, got EPERM
ok 3
not ok 4 # TODO known
Failed 1/4 subtests 
/p/tests/open/01.t ......... 
1..3
ok 1
ok 2
ok 3
ok
/p/tests/rename/00.t ....... 
1..5
ok 1
ok 2
Dubious, test returned 1 (wstat 256, 0x100)
Failed 3/5 subtests 

Test Summary Report
-------------------
/p/tests/chmod/00.t (Wstat: 0 Tests: 4 Failed: 1)
  Failed test:  2
Files=4, Tests=9,  1 wallclock secs
Result: FAIL
"""


def test_parse_prove_per_file() -> None:
    rs = {r.name: r for r in harness.parse_prove(PROVE, "/p/tests")}
    assert list(rs) == ["chflags/00.t", "chmod/00.t", "open/01.t", "rename/00.t"]
    assert rs["chflags/00.t"].status == "skipped"
    assert rs["chflags/00.t"].skipped == "chflags is not supported"
    chmod = rs["chmod/00.t"]
    assert (chmod.planned, chmod.ran, chmod.failed, chmod.todo) == (4, 4, [2], [4])
    assert chmod.notes[2].startswith("tried 'chmod pjdfstest_x 0644', expected 0, got EPERM")
    assert chmod.status == "FAIL 1/4"
    assert rs["open/01.t"].status == "ok"
    # fewer tests ran than planned and no "not ok": prove's verdict is not "ok"
    assert rs["rename/00.t"].status == "dubious"


def test_totals() -> None:
    t = harness.totals(harness.parse_prove(PROVE, "/p/tests"))
    assert t == {"files": 4, "tests": 9, "failures": 1, "failed_files": 1,
                 "dubious_files": 1, "skipped_files": 1}


def test_short_names() -> None:
    note = ("tried 'rename pjdfstest_54fbdf5ab2c7b9ce5210a16a3d1d3d0a/x "
            "pjdfstest_4f096713bbd02634d4c4b11f646e0bb2', expected 0, got EACCES")
    assert harness.short(note) == ("tried 'rename pjdfstest_54fbdf../x pjdfstest_4f0967..', "
                                   "expected 0, got EACCES")
