"""Issue 19 acceptance: identity stays right -- credentials never outlive their
process (pids wrap under ``XINIM_PID_MAX``), set-ID bits are cleared as Linux
clears them, every fd kind reopens through /proc and /dev, and the first program
(a ``#!`` script too) is found in the XINIM namespace."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.run import C_DIR, native, run_env, xinim_run

from xinim_host.pm.proctable import PID_MAX, PID_MAX_LIMIT, PID_MAX_MIN, pid_max_from_env


def _build(out: Path, name: str) -> Path:
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out / name), str(C_DIR / f"{name}.c")],
                   check=True, timeout=120)
    return out / name


@pytest.fixture(scope="module")
def progs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("identity")
    out.chmod(0o755)      # uid 65534 runs them too
    for name in ("pid_wrap",):
        _build(out, name)
    return out


def test_pid_max_from_env() -> None:
    assert pid_max_from_env({}) == PID_MAX == 32768
    assert pid_max_from_env({"XINIM_PID_MAX": "1000"}) == 1000
    assert pid_max_from_env({"XINIM_PID_MAX": "10"}) == PID_MAX_MIN == 300
    assert pid_max_from_env({"XINIM_PID_MAX": "nonsense"}) == PID_MAX
    assert pid_max_from_env({"XINIM_PID_MAX": str(1 << 30)}) == PID_MAX_LIMIT


def test_credentials_do_not_survive_a_reused_pid(progs: Path) -> None:
    """400 children of root become uid 65534 and die; pids wrap at 300; the next
    children of root are root (getuid, `id -u`, /proc/self/status), and the
    children of an unprivileged process past another wrap are never root."""
    r = xinim_run("--bind", f"{progs}:/t", "/t/pid_wrap", "400",
                  env=run_env(XINIM_PID_MAX="300"), timeout=240)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "phase1 wrapped=1 failures=0"
    assert lines[1:7] == ["0", "root child: getuid=0 euid=0 Uid:\t0\t0\t0\t0"] * 3
    assert lines[7:] == ["phase3 wrapped=1 saw_root=0", "phase3 exit=0"]
