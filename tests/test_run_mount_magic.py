"""mount onto /proc/self/fd/N when N is an O_PATH|O_NOFOLLOW fd of a symlink:
ENOENT natively and under xinim-run (LTP mount08)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from support.run import C_DIR, native, xinim_run


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mount_magic")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out / "mount_magic"),
                    str(C_DIR / "mount_magic.c")], check=True, timeout=120)
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="mount(2) is root's")
def test_mount_on_a_magic_symlink_as_natively(prog: Path, tmp_path: Path) -> None:
    here = native(str(prog / "mount_magic"), str(tmp_path))
    assert here.returncode == 0, here.stderr
    there = xinim_run("--bind", f"{prog}:/t", "/t/mount_magic", "/tmp", timeout=120)
    assert there.returncode == 0, there.stderr
    assert there.stdout == here.stdout
    assert there.stdout == "bind onto the magic link: No such file or directory\n"
