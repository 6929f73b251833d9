"""Issue 8's acceptance: real programs under ``xinim-run`` find /dev and /proc.

Most tests run the ``xinim-run`` console script in a subprocess; the mktemp and
maps tests boot the system in-process, to look into the ramfs and ask MM for
its record of the process."""
from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from xinim_host.cli.launch import run_program
from xinim_host.lib import protocol as p
from xinim_host.system.boot import BootConfig, booted
from xinim_host.lib.errors import SysError

XINIM_RUN = str(Path(sys.executable).with_name("xinim-run"))
TIMEOUT = 60
PYTHON3 = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for ptrace")


def xrun(*argv: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([XINIM_RUN, *options, *argv], capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def errors(res: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without XINIM's own log lines."""
    return [line for line in res.stderr.splitlines() if not line.startswith("xinim:")]


def test_dev_null_zero_urandom() -> None:
    res = xrun("/bin/sh", "-c", "echo x > /dev/null; head -c 4 /dev/zero | od -An -tx1; "
               "head -c 16 /dev/urandom | wc -c")
    assert res.returncode == 0, res.stderr
    assert res.stdout == " 00 00 00 00\n16\n"


def test_dev_full_is_enospc() -> None:
    res = xrun("/bin/bash", "-c", "echo y > /dev/full")
    assert res.returncode == 1
    assert "No space left on device" in res.stderr
    res = xrun("/bin/sh", "-c", "/bin/echo y > /dev/full")
    assert res.returncode == 1 and "No space left on device" in res.stderr


def test_ps_ef_shows_xinim_processes_only() -> None:
    res = xrun("/bin/sh", "-c", "echo $$; ps -ef")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    shell = int(lines[0])
    assert lines[1].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    rows = {}
    for line in lines[2:]:
        cols = line.split(None, 7)
        rows[int(cols[1])] = (int(cols[2]), cols[7])
    ps = [pid for pid, (ppid, cmd) in rows.items() if cmd == "ps -ef"]
    assert len(ps) == 1 and rows[ps[0]][0] == shell          # itself, its shell's child
    assert rows[1] == (0, "[init]")
    assert "sh" in rows[shell][1] and rows[shell][0] == 1    # the shell, init's child
    # nothing else: init, the servers (shown like kernel threads), the shell and ps
    assert set(rows) == {1, p.VFS_PID, p.PM_PID, p.MM_PID, shell, ps[0]}
    assert all(pid < 100 for pid in rows)                    # XINIM pids, not the host's


def test_proc_self_status_agrees_with_the_shell() -> None:
    res = xrun("/bin/sh", "-c", "echo $$; cat /proc/self/status | grep -E '^(Pid|PPid)'; "
               "grep -E '^(Pid|PPid)' /proc/$$/status")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    shell = int(lines[0])
    fields = [line.split(":\t") for line in lines[1:]]
    # cat's own Pid, its parent the shell; then the shell's own record
    assert fields[0][0] == "Pid" and int(fields[0][1]) not in (shell, 1)
    assert fields[1] == ["PPid", str(shell)]
    assert fields[2] == ["Pid", str(shell)] and fields[3] == ["PPid", "1"]


def test_proc_self_fd_lists_exactly_the_open_fds() -> None:
    res = xrun("/bin/sh", "-c", "exec 7</etc/hostname; ls -l /proc/self/fd/")
    assert res.returncode == 0, res.stderr
    links = {}
    for line in res.stdout.splitlines()[1:]:               # after "total 0"
        m = re.search(r" (\d+) -> (.*)$", line)
        assert m, line
        links[int(m.group(1))] = m.group(2)
    assert sorted(links) == [0, 1, 2, 3, 7]
    assert links[7] == "/etc/hostname"
    assert re.fullmatch(r"/proc/\d+/fd", links[3])           # ls's own directory fd
    assert links[0] == links[1] == "/dev/console"


def test_free_uptime_mounts() -> None:
    res = xrun("/bin/sh", "-c", "free; uptime; cat /proc/mounts")
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    assert out[0].split()[:3] == ["total", "used", "free"] and out[1].startswith("Mem:")
    assert re.search(r"up .*load average: [\d.]+, [\d.]+, [\d.]+", out[3])
    mounts = {line.split()[1]: line.split()[2] for line in out[4:]}
    assert mounts["/"] == "ramfs" and mounts["/proc"] == "proc"
    assert mounts["/dev"] == "devtmpfs" and mounts["/dev/pts"] == "devpts"
    assert mounts["/usr"] == "hostfs"


@pytest.mark.skipif(not os.path.exists(PYTHON3), reason="needs /usr/bin/python3")
def test_python_cpu_count_and_loadavg() -> None:
    res = xrun(PYTHON3, "-c", "import os; print(os.cpu_count()); print(*os.getloadavg())")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert int(lines[0]) == os.cpu_count()
    assert len([float(x) for x in lines[1].split()]) == 3


def test_cmdline_comm_exe_cwd() -> None:
    res = xrun("/bin/sh", "-c", "cd /tmp; cat /proc/self/cmdline; echo; cat /proc/self/comm; "
               "readlink /proc/self/exe /proc/self/cwd; ls -l /proc/self/exe")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "cat\0/proc/self/cmdline\0"
    assert lines[1] == "cat"
    assert lines[2].endswith("/readlink") and lines[3] == "/tmp"
    assert lines[4].endswith("/ls")


@pytest.mark.skipif(not os.path.exists(PYTHON3) or not os.path.exists("/dev/ptmx"),
                    reason="needs /usr/bin/python3 and the host's /dev/ptmx")
def test_python_pty_fork(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text(
        "import os, pty, sys\n"
        "pid, fd = pty.fork()\n"
        "if pid == 0:\n"
        "    line = sys.stdin.readline().strip()\n"
        "    print('child', line, os.isatty(1), os.ttyname(0).startswith('/dev/pts/'),\n"
        "          os.getsid(0) == os.getpid(), os.tcgetpgrp(0) == os.getpgrp())\n"
        "    sys.stdout.flush()\n"
        "    os.write(os.open('/dev/tty', os.O_WRONLY), b'on my tty\\n')\n"
        "    os._exit(3)\n"
        "os.write(fd, b'ping\\n')\n"
        "got = b''\n"
        "while True:\n"
        "    try:\n"
        "        chunk = os.read(fd, 1024)\n"
        "    except OSError:\n"
        "        break\n"
        "    if not chunk:\n"
        "        break\n"
        "    got += chunk\n"
        "print(repr(got))\n"
        "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n")
    res = xrun(PYTHON3, "/t/t.py", options=("--bind", f"{tmp_path}:/t"))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == repr(b"ping\r\nchild ping True True True True\r\non my tty\r\n")
    assert lines[1] == "3"


@pytest.mark.skipif(not os.path.exists(PYTHON3) or not os.path.exists("/dev/ptmx"),
                    reason="needs /usr/bin/python3 and the host's /dev/ptmx")
def test_pty_signals(tmp_path: Path) -> None:
    """^C typed into the master and a new window size signal the child's group."""
    (tmp_path / "t.py").write_text(
        "import fcntl, os, pty, signal, struct, sys, termios, time\n"
        "pid, fd = pty.fork()\n"
        "if pid == 0:\n"
        "    def on(sig, frame):\n"
        "        print('got', signal.Signals(sig).name, flush=True)\n"
        "        if sig == signal.SIGINT:\n"
        "            os._exit(7)\n"
        "    signal.signal(signal.SIGINT, on)\n"
        "    signal.signal(signal.SIGWINCH, on)\n"
        "    print('ready', flush=True)\n"
        "    while True:\n"
        "        time.sleep(0.05)\n"
        "buf = b''\n"
        "while b'ready' not in buf:\n"
        "    buf += os.read(fd, 100)\n"
        "fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 30, 100, 0, 0))\n"
        "while b'WINCH' not in buf:\n"
        "    buf += os.read(fd, 100)\n"
        "os.write(fd, b'\\x03')\n"
        "while True:\n"
        "    try:\n"
        "        chunk = os.read(fd, 100)\n"
        "    except OSError:\n"
        "        break\n"
        "    if not chunk:\n"
        "        break\n"
        "    buf += chunk\n"
        "print(repr(buf))\n"
        "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n")
    res = xrun(PYTHON3, "/t/t.py", options=("--bind", f"{tmp_path}:/t"))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "got SIGWINCH" in lines[0] and "^Cgot SIGINT" in lines[0]
    assert lines[1] == "7"


# --- in-process: the ramfs and MM's record -------------------------------------------------


async def _run(system: Any, argv: list[str]) -> int:
    return await run_program(system, argv, {"PATH": "/usr/bin:/bin"})


async def test_mktemp_makes_entries_in_the_ramfs_tmp(console: Any) -> None:
    async with booted(BootConfig(console=console, quiet=True)) as system:
        with trio.fail_after(TIMEOUT):
            code = await _run(system, ["/bin/sh", "-c", "mktemp; mktemp -d; ls -ld /tmp"])
        assert code == 0, console.text
        made_file, made_dir, tmp = console.text.splitlines()
        assert tmp.startswith("drwxrwxrwt ")
        ramfs = system.vfs.ramfs
        tmpdir = ramfs.lookup(ramfs.root, b"tmp")
        f = tmpdir.entries[os.fsencode(made_file.removeprefix("/tmp/"))]
        d = tmpdir.entries[os.fsencode(made_dir.removeprefix("/tmp/"))]
        assert f.is_reg and f.mode & 0o777 == 0o600
        assert d.is_dir and d.mode & 0o777 == 0o700


async def test_proc_self_maps_is_mms_record(console: Any, monkeypatch: Any) -> None:
    async with booted(BootConfig(console=console, quiet=True)) as system:
        mm = system.mm
        sent: dict[int, list[str]] = {}
        real = mm.handlers[p.MM_MAPS]

        def maps(srv: Any, req: Any) -> Any:
            """MM's answer, with the text it gave VFS recorded."""
            b = req.msg.body
            from_vfs = req.msg.m_source == p.VFS_PID
            if from_vfs and b.offset == 0:
                sent.setdefault(b.pid, []).append(srv.acct.space(b.pid).format_maps())
            try:
                return real(srv, req)
            except SysError as exc:
                if exc.errno != errno.EPERM or not from_vfs:
                    raise
            # an MM that does not let VFS ask yet: answered as it answers the kernel
            text = srv.acct.space(b.pid).format_maps().encode()
            use = srv.acct.usage(b.pid)
            return p.MmMapsReply(result=len(text), used=use.used, shared=use.shared,
                                 private=use.private, mapped_pages=use.mapped_pages,
                                 data=text[b.offset:b.offset + p.DATA_MAX])

        monkeypatch.setitem(mm.handlers, p.MM_MAPS, maps)
        with trio.fail_after(TIMEOUT):
            code = await _run(system, ["/bin/sh", "-c", "cat /proc/self/maps"])
        assert code == 0, console.text
        out = console.text
        [(pid, texts)] = [(pid, t) for pid, t in sent.items()]
        assert out == texts[0] and out.count("\n") > 5
        assert any(line.endswith("[stack]") for line in out.splitlines())
        assert "/usr/bin/cat" in out or "/bin/cat" in out


def test_xinim_run_is_on_path() -> None:
    assert shutil.which("xinim-run", path=str(Path(XINIM_RUN).parent))
