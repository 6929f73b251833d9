"""The query forms of rt_sigaction and rt_sigprocmask (no new action / set) run
on the host with no tracer stop (the seccomp filter's ``allowed_if_zero``,
kernel/renumber.py HOST_RUN_QUERIES): what they read must be what PM and the
host were told, before and after an exec, as natively."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from support.run import native, run_env, xinim_run

C_DIR = Path(__file__).parent / "c"


def test_sigaction_and_sigprocmask_queries_as_natively(tmp_path: Path) -> None:
    prog = tmp_path / "sig_queries"
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(prog), str(C_DIR / "sig_queries.c")],
                   check=True, timeout=120)
    want = native(str(prog))
    got = xinim_run("--bind", f"{tmp_path}:/t", "/t/sig_queries",
                    env=run_env(XINIM_STATS="1"))
    assert got.returncode == want.returncode == 0, got.stderr
    assert got.stdout == want.stdout
    assert "after-exec ign 1" in got.stdout
    m = re.search(r"xinim-stats: syscalls (\d+) stops (\d+)", got.stderr)
    assert m, got.stderr
    # 120 sigaction queries (glibc refuses 32 and 33 itself) and 2 sigprocmask
    # ones: none of them trapped
    assert int(m[1]) < 120, m[0]


def test_queries_still_trap_while_tracing(tmp_path: Path) -> None:
    """--trace prints every call, so the filter lets no query through then."""
    prog = tmp_path / "sig_queries"
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(prog), str(C_DIR / "sig_queries.c")],
                   check=True, timeout=120)
    got = xinim_run("--bind", f"{tmp_path}:/t", "--trace", "-e", "trace=rt_sigaction",
                    "/t/sig_queries")
    assert got.returncode == 0, got.stderr
    assert len(re.findall(r"rt_sigaction\([^,]+, NULL", got.stderr)) == 120, got.stderr[-2000:]
