"""Issue 14: a child's stops and continues as its parent sees them, differential.

tests/c/jobstop.c stops children with SIGSTOP, SIGTSTP, SIGTTIN and SIGTTOU and
continues them: waitpid(WUNTRACED/WCONTINUED) and waitid report the right signal
and code, the parent gets SIGCHLD for each, and SIGTSTP leaves an orphaned group
alone (SIGSTOP does not).
"""
from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

from support.run import C_DIR, native, xinim_run


def test_stops_and_continues_match_linux(tmp_path: Path) -> None:
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(tmp_path / "jobstop"),
                    str(C_DIR / "jobstop.c")], check=True, timeout=120)
    ref = native(str(tmp_path / "jobstop"))
    assert ref.returncode == 0, ref.stderr
    assert "wait: stopped by Stopped (tty input)" in ref.stdout
    res = xinim_run("--bind", f"{tmp_path}:/t", "/t/jobstop")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ref.stdout, "\n".join(difflib.unified_diff(
        ref.stdout.splitlines(), res.stdout.splitlines(), "native", "xinim-run", lineterm=""))
