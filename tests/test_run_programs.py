"""Issue 4 acceptance: C programs compiled during the test run, under xinim-run.

The programs live in XINIM's namespace only through ``--bind HOSTDIR:/t``; the
files they make are in the ramfs (checked in the same system, and across
systems with ``--image``).
"""
from __future__ import annotations

from pathlib import Path

from support.run import cprogs, xinim_run  # noqa: F401 -- fixture


def test_mvp_program(cprogs: Path) -> None:
    """Plan §11: the MVP program prints Success! and /hello.txt is in the ramfs."""
    res = xinim_run("--bind", f"{cprogs}:/t", "/bin/sh", "-c",
                    "/t/mvp && cat /hello.txt && stat -c '%s %a %F' /hello.txt")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "Success!\nHello XINIM!\n13 644 regular file\n"
    assert not Path("/hello.txt").exists()     # XINIM's /, not the host's


def test_mvp_program_run_directly(cprogs: Path) -> None:
    res = xinim_run("--bind", f"{cprogs}:/t", "/t/mvp")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "Success!\n"


def test_full_file_io(cprogs: Path) -> None:
    """Plan §8.2 test 1: write, lseek, read back, compare; the file stays."""
    res = xinim_run("--bind", f"{cprogs}:/t", "/bin/sh", "-c",
                    "/t/file_io && cat /test.txt && echo && ls -l /test.txt")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:2] == ["file I/O ok", "Hello XINIM"]
    assert lines[2].startswith("-rw-r--r-- 1 root root 11 ")
    assert lines[2].endswith(" /test.txt")


def test_files_persist_through_an_image(cprogs: Path, tmp_path: Path) -> None:
    image = tmp_path / "ramfs.img"
    first = xinim_run("--image", str(image), "--bind", f"{cprogs}:/t", "/bin/sh", "-c",
                      "/t/mvp && /t/file_io && mkdir -p /data/sub && echo kept > /data/sub/f"
                      " && ln -s sub/f /data/link && chmod 600 /data/sub/f")
    assert first.returncode == 0, first.stderr
    assert image.exists() and image.stat().st_size > 0
    # the next system: no bind, no programs; the files the programs made are there
    second = xinim_run("--image", str(image), "/bin/sh", "-c",
                       "cat /hello.txt /test.txt; echo; cat /data/link;"
                       " stat -c '%a %s %n' /data/sub/f; readlink /data/link")
    assert second.returncode == 0, second.stderr
    assert second.stdout == "Hello XINIM!\nHello XINIM\nkept\n600 5 /data/sub/f\nsub/f\n"
    # a change in the second run is saved too
    third = xinim_run("--image", str(image), "/bin/sh", "-c", "rm /hello.txt; ls /")
    assert third.returncode == 0 and "hello.txt" not in third.stdout.split()
    fourth = xinim_run("--image", str(image), "/bin/ls", "/")
    assert "hello.txt" not in fourth.stdout.split() and "test.txt" in fourth.stdout.split()
    # without --image: a fresh ramfs
    fresh = xinim_run("/bin/ls", "/")
    assert "test.txt" not in fresh.stdout.split()


def test_bad_pointers_give_efault_and_the_program_goes_on(cprogs: Path) -> None:
    res = xinim_run("--bind", f"{cprogs}:/t", "/t/badptr")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[-1] == "after: ok, 0 failures"
    cases = [line.split(":")[0] for line in lines[:-1]]
    assert {"open", "openat", "read", "stat", "write", "chdir"} <= set(cases)
    assert all(line.endswith(": EFAULT") for line in lines[:-1]), res.stdout
    assert "Traceback" not in res.stderr


def test_bad_pointers_natively_agree(cprogs: Path) -> None:
    """The same program natively: the cases are real EFAULTs on Linux too."""
    import subprocess
    res = subprocess.run([str(cprogs / "badptr")], capture_output=True, text=True, timeout=60,
                         cwd=str(cprogs))
    assert res.returncode == 0, res.stdout


def test_read_only_buffers_give_efault(cprogs: Path) -> None:
    res = xinim_run("--bind", f"{cprogs}:/t", "/t/robuf")
    assert res.stdout.splitlines()[-1] == "read-only data unchanged", res.stdout
    assert res.returncode == 0, res.stdout


def test_read_only_buffers_natively(cprogs: Path) -> None:
    import subprocess
    res = subprocess.run([str(cprogs / "robuf")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout


def test_long_command_lines() -> None:
    """Shell globs and xargs make command lines far beyond 4 KiB (Linux: ~2 MiB)."""
    res = xinim_run("/bin/sh", "-c", 'set -- $(seq 3000); /bin/echo "$@" | wc -w')
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["3000"]
