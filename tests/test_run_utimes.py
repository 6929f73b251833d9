"""utime, utimes, futimesat, utimensat: which error wins, natively and under
xinim-run (Linux fs/utimes.c: times copied in first; a NULL path is the dirfd's
file or EFAULT, "" ENOENT without AT_EMPTY_PATH; a non-owner EACCES for "now"
without write access, EPERM for explicit times).  LTP utime06 and utimes01."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from support.run import C_DIR, native, xinim_run

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switches to nobody")


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("utimes_order")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out / "utimes_order"),
                    str(C_DIR / "utimes_order.c")], check=True, timeout=120)
    return out


def test_utimes_errors_as_natively(prog: Path, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)                 # nobody looks names up in it
    here = native(str(prog / "utimes_order"), str(tmp_path))
    assert here.returncode == 0, here.stderr
    there = xinim_run("--bind", f"{prog}:/t", "/bin/sh", "-c",
                      "mkdir /tmp/u && /t/utimes_order /tmp/u", timeout=120)
    assert there.returncode == 0, there.stderr
    assert there.stdout == here.stdout
    assert 'utime("", NULL): ENOENT\n' in there.stdout
    assert "utimes(NULL, tv): EFAULT\n" in there.stdout
    assert "nobody utime(roots, bad): EFAULT\n" in there.stdout
