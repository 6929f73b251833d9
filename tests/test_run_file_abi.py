"""Issue 15 acceptance: enforced locks, space and copy calls, memfd, long paths.

``tests/c/file_abi.c`` runs section by section natively and under xinim-run; the
outputs must be the same (the XINIM pid the child sees in F_GETLK is the parent's
``getpid()`` there, as natively).
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from support.run import C_DIR, native, xinim_run

PY_DIR = Path(__file__).resolve().parent / "py"


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("file_abi")
    subprocess.run(["gcc", "-O2", "-Wall", "-Wno-unused-result", "-o", str(out / "file_abi"),
                    str(C_DIR / "file_abi.c")], check=True, timeout=120)
    return out


def _both(prog: Path, tmp_path: Path, *sections: str) -> tuple[str, str]:
    # natively in a tmpfs (/dev/shm): XINIM's ramfs answers as tmpfs does
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        here = native(str(prog / "file_abi"), shm, *sections, timeout=60)
    assert here.returncode == 0, here.stderr
    there = xinim_run("--bind", f"{prog}:/t", "/t/file_abi", "/tmp", *sections, timeout=120)
    assert there.returncode == 0, there.stderr
    return here.stdout, there.stdout


@pytest.mark.parametrize("sections", [("locks",), ("setlkw", "deadlock"), ("ofd", "pipesz", "lease")])
def test_locks_as_natively(prog: Path, tmp_path: Path, sections: tuple[str, ...]) -> None:
    here, there = _both(prog, tmp_path, *sections)
    assert there == here
    if "locks" in sections:       # the acceptance lines themselves
        assert "child flock NB: EAGAIN\n" in there
        assert "child setlk byte 5: EAGAIN\n" in there
        assert "child getlk: type=1 start=0 len=10 pid=parent\n" in there
    if "deadlock" in sections:
        assert "parent setlkw byte 1: EDEADLK\n" in there


def test_flock_command_conflicts() -> None:
    res = xinim_run("/bin/sh", "-c", 'cd /tmp; flock -x f -c "sleep 2" & sleep 0.5;'
                    ' flock -n f -c true; echo $?; wait; flock -n f -c true; echo $?')
    assert res.returncode == 0, res.stderr
    assert res.stdout == "1\n0\n"


def test_sqlite_writers_never_lose_a_row() -> None:
    script = (
        "cd /tmp; W=/py/sqlite_writer.py; python3 $W db init 0;"
        " python3 $W db hold 0 & python3 $W db try 0; wait;"
        " python3 $W db A 150 & python3 $W db B 150; wait;"
        " python3 -c 'import sqlite3; c = sqlite3.connect(\"db\");"
        " print(c.execute(\"select count(*), count(distinct who || i) from t\").fetchone(),"
        " c.execute(\"pragma integrity_check\").fetchone()[0])'")
    res = xinim_run("--bind", f"{PY_DIR}:/py", "/bin/sh", "-c", script, timeout=240)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "try: database is locked"
    assert sorted(line.split()[:2] for line in lines[1:3]) == [["A", "150"], ["B", "150"]]
    assert lines[3] == "(301, 301) ok"


@pytest.mark.parametrize("sections", [("space",), ("copies",), ("memfd",),
                                      ("path", "getdents", "tmpfile", "openat2")])
def test_space_copies_memfd_paths_as_natively(prog: Path, tmp_path: Path,
                                              sections: tuple[str, ...]) -> None:
    here, there = _both(prog, tmp_path, *sections)
    assert there == here
    for line in {"space": ["fallocate 1MiB: OK\n", "size 1048576\n"],
                 "copies": ["copy_file_range 524288 ioff 525288 ooff 524288\n",
                            "copy identical 1\n", "spliced identical 1\n"],
                 "memfd": ["pread after munmap mapped\n", "seals 6\n"],
                 "path": ["create 999-byte path: OK\n", "open again: OK\n"],
                 }.get(sections[0], []):
        assert line in there
    if "getdents" in sections:
        assert "getdents64 10-byte buffer: EINVAL\n" in there


def test_cp_of_10_mb_is_silent_and_identical(tmp_path: Path) -> None:
    script = ("head -c 10485760 /dev/urandom > /tmp/big && cp /tmp/big /tmp/copy"
              " && cmp /tmp/big /tmp/copy && echo same")
    res = xinim_run("/bin/sh", "-c", script, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "same\n"
    assert res.stderr == ""


def test_file_size_and_fd_limits_as_natively() -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        here = native("/usr/bin/python3", str(PY_DIR / "limits.py"), shm)
    assert here.returncode == 0, here.stderr
    there = xinim_run("--bind", f"{PY_DIR}:/py", "/usr/bin/python3", "/py/limits.py", "/tmp")
    assert there.returncode == 0, there.stderr
    assert there.stdout == here.stdout
    assert "fds stop at 39 EMFILE\n" in there.stdout


def test_o_async_signals_the_owner_as_natively() -> None:
    here = native("/usr/bin/python3", str(PY_DIR / "async_io.py"))
    there = xinim_run("--bind", f"{PY_DIR}:/py", "/usr/bin/python3", "/py/async_io.py")
    assert here.returncode == 0 and there.returncode == 0, there.stderr
    assert there.stdout == here.stdout == "got 10\n"
