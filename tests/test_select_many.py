"""select/pselect6 beyond one message, differential.

tests/c/select_many.c opens 700+ fds (RLIMIT_NOFILE raised) and selects on a pipe
with data at fd 650 (and 1500), an empty pipe, hundreds of other fds and a closed fd
(EBADF); nfds goes past FD_SETSIZE.  The pollfd array no longer fits a message, so it
goes to the VFS through the poll grant path; the output must be Linux's line by line.
"""
from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest

from support.run import C_DIR, native, xinim_run


@pytest.fixture(scope="module")
def select_prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("select_many")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out / "select_many"),
                    str(C_DIR / "select_many.c")], check=True, timeout=120)
    return out


def test_select_over_700_fds_matches_linux(select_prog: Path) -> None:
    ref = native(str(select_prog / "select_many"))
    assert ref.returncode == 0, ref.stderr
    assert "select 701: 2 r=650, w=651," in ref.stdout and ref.stdout.endswith("done\n")
    res = xinim_run("--bind", f"{select_prog}:/t", "/t/select_many")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ref.stdout, "\n".join(difflib.unified_diff(
        ref.stdout.splitlines(), res.stdout.splitlines(), "native", "xinim-run", lineterm=""))
