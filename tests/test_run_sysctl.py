"""Root-writable /proc/sys files (vfs_fuse/sysctl.py): Linux's checks, the same
errors as natively, and limits the servers honour -- per XINIM system, never
the host's (the host's files are read before and after and must not change).

``tests/c/sysctl_write.c errors`` changes nothing and runs on both sides;
``set`` writes limits and runs under XINIM only (natively it would change the
host), compared with what Linux documents.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from support.run import C_DIR, native, xinim_run

HOST_FILES = ("fs/pipe-max-size", "kernel/shmmax", "kernel/msgmni", "kernel/msgmax",
              "kernel/domainname")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the native side writes as root")


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sysctl_write")
    subprocess.run(["gcc", "-O2", "-Wall", "-Wno-unused-result", "-o", str(out / "sysctl_write"),
                    str(C_DIR / "sysctl_write.c")], check=True, timeout=120)
    return out


def _host() -> dict[str, str]:
    return {name: Path("/proc/sys", name).read_text() for name in HOST_FILES}


def test_errors_as_natively(prog: Path) -> None:
    here = native(str(prog / "sysctl_write"), "errors")
    assert here.returncode == 0, here.stderr
    there = xinim_run("--bind", f"{prog}:/t", "/t/sysctl_write", "errors", timeout=120)
    assert there.returncode == 0, there.stderr
    assert there.stdout == here.stdout
    assert "ostype: EACCES\n" in there.stdout                     # 0444: root too
    assert "nobody writes pipe-max-size: EACCES\n" in there.stdout


def test_limits_are_honoured_and_the_hosts_untouched(prog: Path) -> None:
    before = _host()
    res = xinim_run("--bind", f"{prog}:/t", "/t/sysctl_write", "set", timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "pipe-max-size 5000: OK", "reads 8192",            # rounded up to a power of 2 pages
        "nobody F_SETPIPE_SZ 8192: OK", "nobody F_SETPIPE_SZ 16384: EPERM",
        "shmmax 8192: OK", "reads 8192", "shmget 8193: EINVAL", "shmget 8192: OK",
        "shmget SHM_HUGETLB as root: ENOMEM",              # XINIM has no huge pages
        "msgmni used+2: OK", "msgget 0: OK", "msgget 1: OK", "msgget 2: ENOSPC",
        "msgmax 100: OK", "msgsnd 101: EINVAL", "msgsnd 100: OK",
        "domainname: OK", "reads xinim.test"]
    assert _host() == before
    again = xinim_run("/bin/cat", "/proc/sys/fs/pipe-max-size", timeout=120)
    assert again.stdout == "1048576\n"                    # a new system: the default again
