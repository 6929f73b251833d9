"""remap_file_pages(2), emulated as Linux does (an mmap MAP_FIXED of the same
object at pgoff): ``tests/c/remap_file.c`` natively and under xinim-run -- a
shared file map, shared anonymous memory, a SysV segment before and after
IPC_RMID, and the EINVAL cases -- must print the same."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.run import C_DIR, native, xinim_run


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("remap_file")
    subprocess.run(["gcc", "-O2", "-Wall", "-Wno-unused-result", "-o", str(out / "remap_file"),
                    str(C_DIR / "remap_file.c")], check=True, timeout=120)
    return out


def test_remap_file_pages_as_natively(prog: Path, tmp_path: Path) -> None:
    here = native(str(prog / "remap_file"), str(tmp_path), timeout=60)
    assert here.returncode == 0, here.stderr
    there = xinim_run("--bind", f"{prog}:/t", "/t/remap_file", "/tmp", timeout=120)
    assert there.returncode == 0, there.stderr
    assert there.stdout == here.stdout
    # the remaps took effect, and the cases Linux refuses were refused
    assert "after: C B A B\n" in there.stdout
    assert "a second map of the file: A y x D\n" in there.stdout
    assert "shm after IPC_RMID: OK\n" in there.stdout
    assert "  the other attach reads: a b z\n" in there.stdout
    assert there.stdout.count("EINVAL") == 9
    assert "last attach of a removed segment: failed\n" in there.stdout
    assert "  the segment: gone\n" in there.stdout
    assert "ENOSYS" not in there.stdout


def test_written_back_map_refused_not_corrupted(prog: Path, tmp_path: Path) -> None:
    """A MAP_SHARED map of a host-mount file open for writing is an anonymous
    host map written back through the VFS: remap_file_pages there is EINVAL
    (the table's note), and the file keeps its bytes."""
    (tmp_path / "h").mkdir()
    res = xinim_run("--bind", f"{prog}:/t", "--bind", f"{tmp_path}:/h:rw", "/t/remap_file",
                    "/h/h", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "remap page 0 -> file page 2: EINVAL\n" in res.stdout
    assert "after: A B C D\n" in res.stdout
    assert "shm after IPC_RMID: OK\n" in res.stdout
