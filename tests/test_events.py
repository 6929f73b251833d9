"""Issue 14 acceptance: event fds and epoll under xinim-run, differential.

tests/c/events.c puts a pipe, an eventfd, a timerfd, a signalfd and an inotify fd
in one epoll set and checks Linux's answers for bad input, EPOLLET, EPOLLONESHOT,
nesting, fork and dup; it prints only what must be the same natively and inside
XINIM, so the two outputs are compared line by line.
"""
from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest

from support.run import C_DIR, native, xinim_run


@pytest.fixture(scope="module")
def events_prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("events")
    subprocess.run(["gcc", "-O2", "-Wall", "-Wno-stringop-overflow", "-o", str(out / "events"),
                    str(C_DIR / "events.c")], check=True, timeout=120)
    return out


def _same(expected: str, got: str) -> None:
    assert got == expected, "\n".join(difflib.unified_diff(
        expected.splitlines(), got.splitlines(), "native", "xinim-run", lineterm=""))


@pytest.mark.parametrize("parts", ["petsi"])
def test_one_epoll_set_of_every_kind_matches_linux(events_prog: Path, tmp_path: Path,
                                                   parts: str) -> None:
    ref = native(str(events_prog / "events"), str(tmp_path), parts)
    assert ref.returncode == 0, ref.stderr
    assert "wait 0:" in ref.stdout and ref.stdout.endswith("done\n")
    res = xinim_run("--bind", f"{events_prog}:/t", "/t/events", "/tmp", parts)
    assert res.returncode == 0, res.stderr
    _same(ref.stdout, res.stdout)


def _build(out: Path, name: str) -> None:
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out / name), str(C_DIR / f"{name}.c")],
                   check=True, timeout=120)


def test_inotify_events_match_linux(events_prog: Path, tmp_path: Path) -> None:
    """Every event kind (create, modify, attrib, close, open, moves with one cookie,
    delete, delete_self, ignored, IN_ONLYDIR, IN_MASK_ADD, IN_ONESHOT) in Linux's order."""
    _build(events_prog, "inotify")
    ref = native(str(events_prog / "inotify"), str(tmp_path))
    assert ref.returncode == 0, ref.stderr
    assert "cookie=prev" in ref.stdout and ref.stdout.endswith("done\n")
    res = xinim_run("--bind", f"{events_prog}:/t", "/bin/sh", "-c",
                    "mkdir /tmp/w && /t/inotify /tmp/w")
    assert res.returncode == 0, res.stderr
    _same(ref.stdout, res.stdout)


def test_inotify_sees_files_made_inside_xinim_and_through_the_fuse_mount(
        events_prog: Path, tmp_path: Path) -> None:
    import os
    from support.run import XINIM_RUN, run_env
    _build(events_prog, "inotify_wait")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen(
        [XINIM_RUN, "--mount", str(mnt), "--bind", f"{events_prog}:/t", "/bin/sh", "-c",
         "mkdir /tmp/seen && /t/inotify_wait /tmp/seen 2 | { read r; echo $r; read c; echo $c; "
         "touch /tmp/seen/inside; read c; echo $c; }"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=run_env(), cwd="/")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        # one call (no fd to close: xinim-run may end, and unmount, right after)
        os.mkdir(mnt / "tmp" / "seen" / "from-host")
        assert proc.stdout.readline() == "created from-host\n"
        # then the shell makes one inside XINIM
        assert proc.stdout.readline() == "created inside\n"
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


EXEC_CHECK = r"""
import os, select, sys
if len(sys.argv) > 1:            # after the exec: which event fds are still open?
    names = []
    for fd in sorted(int(f) for f in os.listdir("/proc/self/fd")):
        try:
            target = os.readlink("/proc/self/fd/%d" % fd)
        except OSError:
            continue
        if target.startswith("anon_inode:"):
            names.append(target)
    print(" ".join(names))
    sys.exit(0)
ep = select.epoll()                                      # close-on-exec by default
keep = [os.eventfd(1, 0), ep.fileno()]               # (os.eventfd defaults to EFD_CLOEXEC)
os.set_inheritable(keep[1], True)
lost = os.eventfd(2, os.EFD_CLOEXEC)
t = os.open("/proc/self/fdinfo/%d" % keep[0], os.O_RDONLY)
print(os.read(t, 4096).decode().splitlines()[-3])        # eventfd-count
os.close(t)
pid = os.fork()
if pid == 0:                                               # the child's copy is the same file
    os.write(keep[0], (5).to_bytes(8, "little"))
    os._exit(0)
os.waitpid(pid, 0)
d = os.dup(keep[0])
print(int.from_bytes(os.read(d, 8), "little"))
os.execv(sys.executable, [sys.executable, sys.argv[0], "after"])
"""


def test_event_fds_survive_fork_dup_and_exec_as_linux(tmp_path: Path) -> None:
    script = tmp_path / "exec_check.py"
    script.write_text(EXEC_CHECK)
    ref = native("/usr/bin/python3", str(script))
    assert ref.returncode == 0, ref.stderr
    assert ref.stdout.endswith("anon_inode:[eventpoll] anon_inode:[eventfd]\n")   # no 2nd eventfd
    res = xinim_run("--bind", f"{tmp_path}:/s", "/usr/bin/python3", "/s/exec_check.py")
    assert res.returncode == 0, res.stderr
    _same(ref.stdout, res.stdout)


ASYNCIO = r"""
import asyncio
async def main():
    await asyncio.sleep(0.05)
    proc = await asyncio.create_subprocess_exec("/bin/echo", "hello", "from", "echo",
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    print(out.decode().strip(), proc.returncode)
asyncio.run(main())
"""


def test_python_asyncio_sleeps_and_runs_a_subprocess(tmp_path: Path) -> None:
    from xinim_host.kernel.renumber import Action, LINUX_NUMBERS, route
    if route(LINUX_NUMBERS["socketpair"]).action is Action.ENOSYS:
        pytest.skip("asyncio's event loop needs socketpair (sockets: the NET server)")
    script = tmp_path / "aio.py"
    script.write_text(ASYNCIO)
    res = xinim_run("--bind", f"{tmp_path}:/s", "/usr/bin/python3", "/s/aio.py")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hello from echo 0\n"


def test_inotify_sees_host_writes_through_the_fuse_mount(events_prog: Path, tmp_path: Path) -> None:
    """A file written on the host through the FUSE mount: IN_CREATE, IN_OPEN,
    IN_MODIFY, IN_CLOSE_WRITE, as a local write would give on Linux."""
    import os
    from support.run import XINIM_RUN, run_env
    _build(events_prog, "inotify_wait")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen(
        [XINIM_RUN, "--mount", str(mnt), "--bind", f"{events_prog}:/t", "/bin/sh", "-c",
         "mkdir /tmp/seen && /t/inotify_wait /tmp/seen 4 0x12a"],   # CREATE OPEN MODIFY CLOSE_WRITE
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=run_env(), cwd="/")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        fd = os.open(mnt / "tmp" / "seen" / "edited", os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, b"hello")
        os.close(fd)
        got = [proc.stdout.readline() for _ in range(4)]
        assert got == ["0x100 edited\n", "0x20 edited\n", "0x2 edited\n", "0x8 edited\n"]
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_tail_f_follows_a_file_with_inotify() -> None:
    """coreutils tail -f waits on inotify (its 30 s polling interval would miss the
    line appended while it runs)."""
    res = xinim_run("/bin/sh", "-c",
                    "echo one > /tmp/log; tail -f -s 30 /tmp/log & t=$!; sleep 0.5; "
                    "echo two >> /tmp/log; sleep 1; kill $t; wait $t; echo status $?")
    assert res.stdout == "one\ntwo\nstatus 143\n", res.stderr


SCM = r"""
import os, socket, select
a, b = socket.socketpair()
e = os.eventfd(0, 0)
ep0 = select.epoll()
socket.send_fds(a, [b"x"], [e, ep0.fileno()])
msg, fds, flags, addr = socket.recv_fds(b, 10, 4)
print([os.readlink("/proc/self/fd/%d" % fd) for fd in fds])
os.eventfd_write(e, 9)                      # the same file on both sides
ep = select.epoll()
ep.register(fds[0], select.EPOLLIN)
print([ev for _, ev in ep.poll(1)], os.eventfd_read(fds[0]))
"""


def test_event_fds_cross_scm_rights(tmp_path: Path) -> None:
    script = tmp_path / "scm.py"
    script.write_text(SCM)
    ref = native("/usr/bin/python3", str(script))
    assert ref.returncode == 0, ref.stderr
    res = xinim_run("--bind", f"{tmp_path}:/s", "/usr/bin/python3", "/s/scm.py")
    assert res.returncode == 0, res.stderr
    _same(ref.stdout, res.stdout)


def test_ppoll_pselect_and_epoll_pwait_apply_their_signal_mask(events_prog: Path) -> None:
    """The race-free pattern: a signal blocked elsewhere is let through only during
    the wait; its handler runs inside it (EINTR) and the old mask comes back."""
    _build(events_prog, "sigmask_wait")
    ref = native(str(events_prog / "sigmask_wait"))
    assert ref.returncode == 0, ref.stderr
    assert "ppoll: -1 Interrupted system call handler 10 still blocked 1" in ref.stdout
    res = xinim_run("--bind", f"{events_prog}:/t", "/t/sigmask_wait")
    assert res.returncode == 0, res.stderr
    _same(ref.stdout, res.stdout)


def test_epoll_with_o_path_fds_says_ebadf_as_linux(events_prog: Path, tmp_path: Path) -> None:
    """An O_PATH descriptor is no file to epoll (Linux's fdget skips it): EBADF
    as the fd to watch and as the epoll fd, not EPERM/EINVAL (LTP epoll_ctl06)."""
    _build(events_prog, "epoll_opath")
    ref = native(str(events_prog / "epoll_opath"), str(tmp_path))
    assert ref.returncode == 0, ref.stderr
    assert "ctl add O_PATH file: Bad file descriptor" in ref.stdout
    res = xinim_run("--bind", f"{events_prog}:/t", "/t/epoll_opath", "/tmp")
    assert res.returncode == 0, res.stderr
    _same(ref.stdout, res.stdout)


def test_epollexclusive_wakes_one_waiter_per_event_as_linux(events_prog: Path) -> None:
    """Several processes, each with its own epoll holding one pipe with
    EPOLLEXCLUSIVE, all asleep: a byte wakes one of them, not all (LTP
    epoll_wait16; WaitQueue.wake's exclusive subscribers)."""
    _build(events_prog, "epoll_exclusive")
    ref = native(str(events_prog / "epoll_exclusive"))
    assert ref.returncode == 0, ref.stderr
    assert "byte 1: 1 woken" in ref.stdout
    res = xinim_run("--bind", f"{events_prog}:/t", "/t/epoll_exclusive")
    assert res.returncode == 0, res.stderr
    _same(ref.stdout, res.stdout)
