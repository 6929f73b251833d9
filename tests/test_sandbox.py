"""Issue 11: the sandbox boundary, tried from inside as an attacker would.

tests/c/sandbox_escape.c forges the old seccomp cookie and 1,000 random values in
the argument registers of ``openat`` on a host file outside every XINIM mount,
and aims prlimit64/setpriority/sched_setaffinity/getpriority at a host process
outside XINIM.  Natively the same program reads the file (so the probe works);
under xinim-run nothing gets through, the host process is unchanged, and the
same calls on the program's own child still work as natively.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from support.run import C_DIR, native, xinim_run


@pytest.fixture(scope="module")
def escape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sandbox")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out / "sandbox_escape"),
                    str(C_DIR / "sandbox_escape.c")], check=True, timeout=120)
    return out


def _host_view(pid: int) -> tuple[str, int, set[int]]:
    limits = [line for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
              if line.startswith("Max open files")][0]
    return limits, os.getpriority(os.PRIO_PROCESS, pid), os.sched_getaffinity(pid)


def test_no_escape_from_inside(escape: Path, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    victim = subprocess.Popen(["sleep", "300"])
    try:
        before = _host_view(victim.pid)
        nat = native(str(escape / "sandbox_escape"), str(secret), "999999999")
        assert nat.returncode == 0, nat.stderr
        assert nat.stdout.splitlines()[0] == "openat: 2002 of 2002 read the host file LEAK"

        run = xinim_run("--bind", f"{escape}:/t", "/t/sandbox_escape", str(secret),
                        str(victim.pid))
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        assert "LEAK" not in run.stdout, run.stdout
        assert lines[0] == "openat: 0 of 2002 read the host file"
        # the host process is refused as Linux refuses a task of another pid
        # namespace, and the own-child lines match the native run exactly
        assert lines[1:] == nat.stdout.splitlines()[1:]
        assert [line.split(":")[0] for line in lines[2:6]] == [
            "prlimit64(host)", "setpriority(host)", "sched_setaffinity(host)", "getpriority(host)"]
        assert all(line.endswith("ESRCH") for line in lines[2:6]), lines
        assert _host_view(victim.pid) == before
    finally:
        victim.kill()
        victim.wait()
