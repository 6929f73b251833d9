"""Issue 4 acceptance: the real ``xinim-run`` on the real binaries of the machine.

Every test runs the console script in a subprocess, so it covers the whole path:
boot, seccomp+ptrace interception, renumbering, the dispatcher, lattice IPC and
the VFS/PM/MM servers, and the exit status mapping.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from support.run import (XINIM_RUN, assert_xinim_root, native, root_listing, run_env,
                           xinim_run)


def test_ls_root_lists_the_xinim_root() -> None:
    res = xinim_run("/bin/ls", "/")
    assert res.returncode == 0, res.stderr
    names = root_listing(res.stdout)
    assert names == sorted(names)
    assert_xinim_root(names)


def test_ls_la_usr_bin_matches_the_host() -> None:
    host = native("/bin/ls", "-la", "/usr/bin")
    res = xinim_run("/bin/ls", "-la", "/usr/bin")
    assert res.returncode == 0, res.stderr
    assert host.returncode == 0
    assert res.stdout.count("\n") > 50
    assert res.stdout == host.stdout


def test_root_agrees_across_programs() -> None:
    """ls, find and python3 see one and the same XINIM root."""
    ls = xinim_run("/bin/ls", "-a", "/")
    find = xinim_run("/usr/bin/find", "/", "-maxdepth", "1")
    assert ls.returncode == find.returncode == 0, ls.stderr + find.stderr
    from_ls = {n for n in root_listing(ls.stdout) if n not in (".", "..")}
    from_find = {n[1:] for n in root_listing(find.stdout) if n != "/"}
    assert from_ls == from_find
    assert_xinim_root(from_ls)


def test_python3_lists_the_xinim_root() -> None:
    res = xinim_run("/usr/bin/python3", "-c", 'import os; print(sorted(os.listdir("/")))')
    assert res.returncode == 0, res.stderr
    names = eval(res.stdout)            # a list literal of str
    assert isinstance(names, list) and names == sorted(names)
    assert_xinim_root(names)
    ls = xinim_run("/bin/ls", "/")
    assert names == root_listing(ls.stdout)


def test_shell_writes_and_reads_a_ramfs_file() -> None:
    res = xinim_run("/bin/sh", "-c", "echo hello > /hello.txt; cat /hello.txt")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hello\n"
    # a fresh system each time: the file was in that system's ramfs only
    assert not os.path.exists("/hello.txt")
    again = xinim_run("/bin/cat", "/hello.txt")
    assert again.returncode == 1


def _mounted(where: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(where) for line in f)


def test_keep_and_mount_export_the_ramfs_until_ctrl_c(tmp_path: Path) -> None:
    where = tmp_path / "mnt"
    where.mkdir()
    proc = subprocess.Popen([XINIM_RUN, "--mount", str(where), "--keep", "/bin/sh", "-c",
                             "echo hello > /hello.txt; cat /hello.txt"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=run_env(), cwd="/")
    try:
        target = where / "hello.txt"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            # the content, not just the name: the shell's write may still be
            # under way (its reply waits until the host kernel is told)
            if _mounted(where) and target.exists() and target.stat().st_size:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        # the host reads the file through the FUSE export while xinim-run runs
        cat = subprocess.run(["cat", str(target)], capture_output=True, text=True, timeout=30)
        assert cat.returncode == 0 and cat.stdout == "hello\n"
        listing = set(os.listdir(where))
        assert {"hello.txt", "tmp", "dev", "bin", "usr"} <= listing
        time.sleep(0.2)
        assert proc.poll() is None, "--keep: the system must stay up after PROGRAM exits"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out == "hello\n"
    assert "exited 0" in err
    # no stale mount: the export is gone and the directory is empty again
    assert not _mounted(where)
    assert os.listdir(where) == []


def test_ctrl_c_of_keep_exits_130_without_traceback() -> None:
    proc = subprocess.Popen([XINIM_RUN, "--keep", "/bin/true"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=run_env(), cwd="/")
    assert proc.stderr is not None
    err_fd = proc.stderr.fileno()
    os.set_blocking(err_fd, False)

    def drain() -> str:
        chunks = []
        while True:
            try:
                chunk = os.read(err_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    try:
        deadline = time.monotonic() + 30
        err = ""
        while time.monotonic() < deadline and "kept up" not in err:
            err += drain()
            time.sleep(0.05)
        assert "kept up" in err, err
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        err += drain()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err
    assert proc.returncode == 130


def test_cat_of_a_missing_file_is_cats_own_error() -> None:
    res = xinim_run("/bin/cat", "/nonexistent")
    assert res.returncode == 1
    assert res.stdout == ""
    assert "cat: /nonexistent: No such file or directory" in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_program_exits_127_like_a_shell() -> None:
    res = xinim_run("/nonexistent")
    assert res.returncode == 127
    assert "/nonexistent" in res.stderr and "No such file or directory" in res.stderr
    assert "Traceback" not in res.stderr
    # a bare name is searched in PATH, inside XINIM, as a shell does
    res = xinim_run("no-such-command-xinim")
    assert res.returncode == 127
    assert "no-such-command-xinim: command not found" in res.stderr
    # found but not executable: 126
    res = xinim_run("/etc/passwd")
    assert res.returncode == 126
    assert "Traceback" not in res.stderr


def test_exit_status_and_signals_come_back() -> None:
    assert xinim_run("/bin/sh", "-c", "exit 42").returncode == 42
    assert xinim_run("/bin/false").returncode == 1
    # killed by signal N: 128+N
    assert xinim_run("/bin/sh", "-c", "kill -TERM $$").returncode == 128 + signal.SIGTERM


def test_stdin_reaches_the_program() -> None:
    res = xinim_run("/bin/sh", "-c", "read line; echo got:$line", input=b"abc\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "got:abc\n"


def test_stdin_from_a_file_or_dev_null(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("from a file\n")
    with open(src) as stdin:
        res = subprocess.run([XINIM_RUN, "/bin/cat"], stdin=stdin, capture_output=True,
                             text=True, timeout=60, env=run_env(), cwd="/")
    assert (res.returncode, res.stdout) == (0, "from a file\n"), res.stderr[-500:]
    with open(os.devnull) as stdin:
        res = subprocess.run([XINIM_RUN, "/bin/cat"], stdin=stdin, capture_output=True,
                             text=True, timeout=60, env=run_env(), cwd="/")
    assert (res.returncode, res.stdout) == (0, ""), res.stderr[-500:]


def test_trace_prints_strace_like_lines_with_the_xinim_path() -> None:
    res = xinim_run("--trace", "/bin/cat", "/etc/passwd")
    assert res.returncode == 0
    assert res.stdout == Path("/etc/passwd").read_text()
    lines = [line for line in res.stderr.splitlines() if "<XINIM" in line]
    opened = [line for line in lines if line.startswith('openat(AT_FDCWD, "/etc/passwd"')]
    assert opened, res.stderr[:2000]
    assert "<XINIM 109 openat \u2192 VFS" in opened[0]
    assert " = 3  <" in opened[0]
    # one line per call, with the result and the time
    assert all(line.endswith("\u00b5s>") for line in lines)
    assert any(line.startswith("read(3, ") and "<XINIM 5 read \u2192 VFS" in line for line in lines)
    assert any("<XINIM 35 mmap \u2192 MM" in line for line in lines)
    assert any(line.startswith("close(3)") and " = 0  <" in line for line in lines)
    without = xinim_run("/bin/cat", "/etc/passwd")
    assert "XINIM 109" not in without.stderr


def test_trace_file(tmp_path: Path) -> None:
    out = tmp_path / "trace.txt"
    res = xinim_run("--trace-file", str(out), "/bin/ls", "/")
    assert res.returncode == 0
    assert "<XINIM" not in res.stderr
    text = out.read_text()
    assert "getdents64(" in text and "\u2192 VFS" in text


def test_bind_reaches_a_host_directory_read_only(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("from the host\n")
    res = xinim_run("--bind", f"{tmp_path}:/t", "/bin/sh", "-c",
                    "cat /t/in.txt; echo x > /t/new 2>/dev/null || echo refused; ls /t")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "from the host\nrefused\nin.txt\n"
    assert not (tmp_path / "new").exists()
    # :rw writes through to the host directory
    res = xinim_run("--bind", f"{tmp_path}:/t:rw", "/bin/sh", "-c", "echo made > /t/new")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "new").read_text() == "made\n"
