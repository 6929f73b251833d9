"""devfs, devpts and procfs as the VFS serves them (issue 8), through real
messages: the initial tree, device nodes and drivers, /dev/shm in the ramfs,
magic links, the pty pass-through, /proc fed by PM and MM (a booted system),
and a handler re-run when PM answers late."""
from __future__ import annotations

import errno

import os
import signal
import stat
import struct
from typing import Any

import pytest
import trio

from xinim_host.lib import protocol as p
from xinim_host.system.boot import BootConfig, booted
from xinim_host.lib.ipc import Lattice
from xinim_host.vfs_fuse.server import VfsServer

from support.vfs import AT_FDCWD, DIRENT, Vfs, vfs  # noqa: F401 -- fixture

TIOCGPTN, TIOCSPTLCK, TIOCGPTPEER, TCGETS = 0x80045430, 0x40045431, 0x5441, 0x5401
TIOCSCTTY, TIOCGPGRP, TIOCSWINSZ, TIOCGWINSZ = 0x540E, 0x540F, 0x5414, 0x5413


def names(blob: bytes) -> list[bytes]:
    out, off = [], 0
    while off < len(blob):
        _, _, reclen, _ = DIRENT.unpack_from(blob, off)
        out.append(blob[off + DIRENT.size:off + reclen].split(b"\0", 1)[0])
        off += reclen
    return out


async def listdir(v: Vfs, path: bytes, pid: int = 1) -> list[bytes]:
    fd = await v.open(path, os.O_RDONLY | os.O_DIRECTORY, pid=pid)
    out: list[bytes] = []
    while True:
        r = await v.ok(p.VfsGetdents(caller=pid, fd=fd, count=4096))
        if not r.data:
            break
        out += names(r.data)
    await v.close(fd, pid=pid)
    return out


async def read_all(v: Vfs, path: bytes, pid: int = 1) -> bytes:
    fd = await v.open(path, pid=pid)
    data = await v.read(fd, 1 << 20, pid=pid)
    await v.close(fd, pid=pid)
    return data


async def readlink(v: Vfs, path: bytes, pid: int = 1) -> bytes:
    return (await v.ok(p.VfsReadlink(caller=pid, dirfd=AT_FDCWD, size=4096, path=path))).data


# --- the initial tree and devfs --------------------------------------------------------


async def test_initial_tree(vfs: Vfs) -> None:
    for path, mode in ((b"/tmp", 0o1777), (b"/var/tmp", 0o1777), (b"/root", 0o700),
                       (b"/home", 0o755), (b"/run", 0o755), (b"/mnt", 0o755),
                       (b"/dev", 0o755), (b"/dev/shm", 0o1777), (b"/proc", 0o555)):
        st = await vfs.stat(path)
        assert stat.S_ISDIR(st.mode) and st.mode & 0o7777 == mode, path
    for path in (b"/bin", b"/usr", b"/etc"):                 # the host mounts
        assert stat.S_ISDIR((await vfs.stat(path)).mode)
    # the ramfs itself (what the FUSE export shows): /dev holds only shm, /proc nothing
    ramfs = vfs.srv.ramfs
    dev = ramfs.lookup(ramfs.root, b"dev")
    assert list(dev.entries) == [b"shm"]
    assert ramfs.lookup(ramfs.root, b"proc").entries == {}


async def test_device_nodes(vfs: Vfs) -> None:
    want = {b"null": (1, 3, 0o666), b"zero": (1, 5, 0o666), b"full": (1, 7, 0o666),
            b"random": (1, 8, 0o666), b"urandom": (1, 9, 0o666), b"tty": (5, 0, 0o666),
            b"console": (5, 1, 0o600), b"ptmx": (5, 2, 0o666)}
    for name, (major, minor, mode) in want.items():
        st = await vfs.stat(b"/dev/" + name)
        assert stat.S_ISCHR(st.mode) and st.mode & 0o7777 == mode, name
        assert st.rdev == os.makedev(major, minor), name
    links = {b"stdin": b"/proc/self/fd/0", b"stdout": b"/proc/self/fd/1",
             b"stderr": b"/proc/self/fd/2", b"fd": b"/proc/self/fd"}
    for name, target in links.items():
        assert await readlink(vfs, b"/dev/" + name) == target
    assert set(await listdir(vfs, b"/dev")) >= set(want) | set(links) | {b"pts", b"shm"}
    assert await listdir(vfs, b"/dev/pts") == [b".", b"..", b"ptmx"]
    st = await vfs.stat(b"/dev/pts/ptmx")
    assert st.rdev == os.makedev(5, 2) and st.mode & 0o7777 == 0


async def test_device_io(vfs: Vfs) -> None:
    fd = await vfs.open(b"/dev/zero")
    assert await vfs.read(fd, 4) == bytes(4)
    fd = await vfs.open(b"/dev/full", os.O_RDWR)
    assert await vfs.err(p.VfsWrite(caller=1, fd=fd, data=b"x", offset=-1)) == "ENOSPC"
    assert await vfs.read(fd, 3) == bytes(3)
    fd = await vfs.open(b"/dev/urandom")
    a, b = await vfs.read(fd, 16), await vfs.read(fd, 16)
    assert len(a) == len(b) == 16 and a != b
    fd = await vfs.open(b"/dev/null", os.O_WRONLY)
    assert await vfs.write(fd, b"gone") == 4


async def test_devfs_is_read_only(vfs: Vfs) -> None:
    assert await vfs.err(p.VfsMknod(caller=1, dirfd=AT_FDCWD, mode=stat.S_IFCHR | 0o666,
                                    dev=os.makedev(1, 3), path=b"/dev/mynull")) == "EROFS"
    assert await vfs.err(p.VfsUnlink(caller=1, dirfd=AT_FDCWD, flags=0,
                                     path=b"/dev/null")) == "EROFS"
    assert await vfs.open_err(b"/dev/newfile", os.O_CREAT | os.O_WRONLY) == "EROFS"
    assert await vfs.err(p.VfsMkdir(caller=1, dirfd=AT_FDCWD, mode=0o755,
                                    path=b"/proc/x")) == "EROFS"
    # ... but a ramfs device node works as on Linux
    await vfs.ok(p.VfsMknod(caller=1, dirfd=AT_FDCWD, mode=stat.S_IFCHR | 0o666,
                            dev=os.makedev(1, 5), path=b"/tmp/z"))
    fd = await vfs.open(b"/tmp/z")
    assert await vfs.read(fd, 2) == bytes(2)


async def test_dev_shm_is_the_ramfs_directory(vfs: Vfs) -> None:
    fd = await vfs.open(b"/dev/shm/seg", os.O_CREAT | os.O_RDWR, 0o600)
    await vfs.write(fd, b"shared")
    ramfs = vfs.srv.ramfs
    shm = ramfs.lookup(ramfs.lookup(ramfs.root, b"dev"), b"shm")
    assert ramfs.read(shm.entries[b"seg"], 0, 10) == b"shared"      # visible over FUSE
    assert (await vfs.stat(b"/dev/shm")).dev == (await vfs.stat(b"/tmp")).dev
    # '..' of /dev/shm is devfs's /dev, getcwd names it /dev/shm
    await vfs.ok(p.VfsChdir(caller=1, path=b"/dev/shm"))
    cwd = await vfs.ok(p.VfsGetcwd(caller=1, size=4096))
    assert cwd.data.rstrip(b"\0") == b"/dev/shm"
    assert b"null" in await listdir(vfs, b"..")
    assert (await vfs.stat(b"../shm/seg")).size == 6
    rmdir = p.VfsRmdir(caller=1, dirfd=AT_FDCWD, path=b"/dev/shm")
    assert await vfs.err(rmdir) in ("EBUSY", "EROFS")


async def test_magic_links_reopen_the_file(vfs: Vfs) -> None:
    fd = await vfs.open(b"/tmp/gone", os.O_CREAT | os.O_RDWR, 0o600)
    await vfs.write(fd, b"still here")
    await vfs.ok(p.VfsUnlink(caller=1, dirfd=AT_FDCWD, flags=0, path=b"/tmp/gone"))
    assert await readlink(vfs, b"/proc/self/fd/%d" % fd) == b"/tmp/gone (deleted)"
    again = await vfs.open(b"/proc/self/fd/%d" % fd)            # as Linux: the same inode
    assert await vfs.read(again, 100) == b"still here"
    # /dev/stdout is fd 1 of whoever asks: the console here
    out = await vfs.open(b"/dev/stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    assert (await vfs.ok(p.VfsFstat(caller=1, fd=out))).rdev == os.makedev(5, 1)


async def test_fd_links_name_files_opened_by_relative_paths(vfs: Vfs) -> None:
    await vfs.ok(p.VfsMkdir(caller=1, dirfd=AT_FDCWD, mode=0o755, path=b"/tmp/d"))
    await vfs.ok(p.VfsChdir(caller=1, path=b"/tmp/d"))
    fd = await vfs.open(b"f", os.O_CREAT | os.O_WRONLY, 0o644)
    d = await vfs.open(b"..", os.O_RDONLY | os.O_DIRECTORY)
    host = await vfs.open(b"/host/file.txt")
    await vfs.ok(p.VfsChdir(caller=1, path=b"/"))
    assert await readlink(vfs, b"/proc/self/fd/%d" % fd) == b"/tmp/d/f"
    assert await readlink(vfs, b"/proc/self/fd/%d" % d) == b"/tmp"
    assert await readlink(vfs, b"/proc/self/fd/%d" % host) == b"/host/file.txt"
    await vfs.ok(p.VfsRename(caller=1, olddirfd=AT_FDCWD, oldpath=b"/tmp/d/f",
                             newdirfd=AT_FDCWD, newpath=b"/tmp/g", flags=0))
    assert await readlink(vfs, b"/proc/self/fd/%d" % fd) == b"/tmp/g"
    r, w = (await vfs.ok(p.VfsPipe(caller=1, flags=0))).read_fd, None
    assert (await readlink(vfs, b"/proc/self/fd/%d" % r)).startswith(b"pipe:[")
    dfd = await vfs.open(b"/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    listed = names((await vfs.ok(p.VfsGetdents(caller=1, fd=dfd, count=4096))).data)
    fp = vfs.srv.procs[1]
    assert sorted(int(n) for n in listed if n.isdigit()) == sorted(
        i for i, of in enumerate(fp.fds) if of is not None)           # dfd among them
    assert await readlink(vfs, b"/proc/self/fd/%d" % dfd) == b"/proc/1/fd"
    del w


# --- ptys ----------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/ptmx"), reason="needs the host's /dev/ptmx")
async def test_pty_pass_through(vfs: Vfs) -> None:
    m = await vfs.open(b"/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
    r = await vfs.ok(p.VfsIoctl(caller=1, fd=m, request=TIOCGPTN, arg=0, data=b""))
    (n,) = struct.unpack("<I", r.data[:4])
    assert await vfs.open_err(b"/dev/pts/%d" % n, os.O_RDWR | os.O_NOCTTY) == "EIO"  # locked
    await vfs.ok(p.VfsIoctl(caller=1, fd=m, request=TIOCSPTLCK, arg=0, data=bytes(4)))
    assert b"%d" % n in await listdir(vfs, b"/dev/pts")
    st = await vfs.stat(b"/dev/pts/%d" % n)
    assert stat.S_ISCHR(st.mode) and os.major(st.rdev) == 136 and os.minor(st.rdev) == n
    s = await vfs.open(b"/dev/pts/%d" % n, os.O_RDWR | os.O_NOCTTY)
    t = await vfs.ok(p.VfsIoctl(caller=1, fd=s, request=TCGETS, arg=0, data=b""))
    assert len(t.data) == 36
    await vfs.ok(p.VfsIoctl(caller=1, fd=s, request=TIOCSWINSZ, arg=0,
                            data=struct.pack("<HHHH", 24, 80, 0, 0)))
    w = await vfs.ok(p.VfsIoctl(caller=1, fd=m, request=TIOCGWINSZ, arg=0, data=b""))
    assert struct.unpack("<HHHH", w.data[:8])[:2] == (24, 80)
    assert await vfs.write(s, b"hello\n") == 6
    with trio.fail_after(5):
        got = b""
        while not got.endswith(b"\r\n"):                   # ONLCR: the host line discipline
            got += (await vfs.ok(p.VfsRead(caller=1, fd=m, count=100, offset=-1))).data
    assert got == b"hello\r\n"
    # a read of the master blocks (in its own task) until the slave writes
    async with trio.open_nursery() as nursery:
        box: list[bytes] = []

        async def reader() -> None:
            box.append((await vfs.ok(p.VfsRead(caller=1, fd=m, count=100, offset=-1))).data)

        nursery.start_soon(reader)
        await trio.sleep(0.05)
        assert not box
        await vfs.write(s, b"x")
    assert box == [b"x"]
    # TIOCGPTPEER: a new fd on the slave
    peer = await vfs.ok(p.VfsIoctl(caller=1, fd=m, request=TIOCGPTPEER, arg=os.O_RDWR,
                                   data=b""))
    assert (await vfs.ok(p.VfsFstat(caller=1, fd=peer.result))).rdev == st.rdev
    # the slave side of someone else's terminal is out of reach
    hm, hs = os.openpty()
    try:
        host_n = os.ttyname(hs).rsplit("/", 1)[1].encode()
        assert await vfs.open_err(b"/dev/pts/" + host_n, os.O_RDWR) == "ENOENT"
    finally:
        os.close(hm)
        os.close(hs)
    for fd in (peer.result, s, m):
        await vfs.close(fd)
    assert await listdir(vfs, b"/dev/pts") == [b".", b"..", b"ptmx"]


# --- procfs on a booted system ------------------------------------------------------------


class Booted:
    def __init__(self, system: Any) -> None:
        self.system = system

    async def ask(self, dst: int, msg: p.Payload) -> Any:
        return (await self.system.lattice.sendrec(p.KERNEL_PID, dst, msg)).body

    async def fork(self, parent: int = 1) -> int:
        r = await self.ask(p.PM_PID, p.ProcFork(parent_pid=parent, flags=signal.SIGCHLD))
        assert not r.error
        return r.result

    async def read(self, path: bytes, pid: int) -> bytes:
        o = await self.ask(p.VFS_PID, p.VfsOpen(caller=pid, dirfd=AT_FDCWD, flags=0, mode=0,
                                                 path=path))
        assert not o.error, (path, errno.errorcode[o.error])
        out = b""
        while True:
            r = await self.ask(p.VFS_PID, p.VfsRead(caller=pid, fd=o.result, count=4096,
                                                     offset=-1))
            assert not r.error
            if not r.data:
                break
            out += r.data
        await self.ask(p.VFS_PID, p.VfsClose(caller=pid, fd=o.result))
        return out


@pytest.fixture
async def booted_sys(console: Any) -> Any:
    async with booted(BootConfig(console=console, quiet=True)) as system:
        yield Booted(system)


async def test_proc_from_pm(booted_sys: Booted) -> None:
    b = booted_sys
    child = await b.fork()
    grandchild = await b.fork(child)
    r = await b.ask(p.PM_PID, p.ProcSetpgid(caller=grandchild, pid=0, pgid=0))
    assert not r.error
    stat_line = await b.read(b"/proc/self/stat", grandchild)
    pid, rest = stat_line.split(b" ", 1)
    fields = rest.rsplit(b")", 1)[1].split()
    assert int(pid) == grandchild and len(fields) + 2 == 52
    assert (int(fields[1]), int(fields[2])) == (child, grandchild)        # ppid, pgrp
    status = dict(line.split(b":\t", 1) for line in
                  (await b.read(b"/proc/%d/status" % grandchild, child)).splitlines())
    assert status[b"Pid"] == b"%d" % grandchild and status[b"PPid"] == b"%d" % child
    assert status[b"NSpgid"] == b"%d" % grandchild
    assert (await b.read(b"/proc/1/comm", child)) == b"init\n"
    listing = await b.ask(p.VFS_PID, p.VfsOpen(caller=child, dirfd=AT_FDCWD,
                                               flags=os.O_DIRECTORY, mode=0, path=b"/proc"))
    dents = await b.ask(p.VFS_PID, p.VfsGetdents(caller=child, fd=listing.result, count=4096))
    pids = {int(n) for n in names(dents.data) if n.isdigit()}
    assert pids == {1, 2, 3, 4, child, grandchild}
    assert (await b.ask(p.VFS_PID, p.VfsReadlink(caller=child, dirfd=AT_FDCWD, size=64,
                                                 path=b"/proc/self"))).data == b"%d" % child
    # an exited process is gone from /proc once PM reaps it
    await b.ask(p.PM_PID, p.ProcExitGroup(caller=grandchild, status=0))
    assert b"Z" in (await b.read(b"/proc/%d/stat" % grandchild, child)).rsplit(b")", 1)[1][:3]
    w = await b.ask(p.PM_PID, p.ProcWait4(caller=child, pid=-1, options=0))
    assert w.result == grandchild
    gone = await b.ask(p.VFS_PID, p.VfsStat(caller=child, dirfd=AT_FDCWD, flags=0,
                                            path=b"/proc/%d" % grandchild))
    assert gone.error == errno.ENOENT


async def test_proc_system_files(booted_sys: Booted) -> None:
    b = booted_sys
    pid = await b.fork()
    up = await b.read(b"/proc/uptime", pid)
    assert 0 <= float(up.split()[0]) < 600
    load = (await b.read(b"/proc/loadavg", pid)).split()
    assert len(load) == 5 and load[3].endswith(b"/5") and int(load[4]) == pid
    st = await b.read(b"/proc/stat", pid)
    assert st.startswith(b"cpu ") and b"\nbtime " in st and b"\nprocesses " in st
    assert b"MemTotal:" in await b.read(b"/proc/meminfo", pid)
    assert (await b.read(b"/proc/version", pid)).startswith(b"XINIM version ")
    mounts = [line.split() for line in (await b.read(b"/proc/mounts", pid)).splitlines()]
    where = {m[1]: m[2] for m in mounts}
    assert where[b"/"] == b"ramfs" and where[b"/proc"] == b"proc"
    assert where[b"/dev"] == b"devtmpfs" and where[b"/dev/pts"] == b"devpts"
    assert where[b"/dev/shm"] == b"ramfs" and where[b"/usr"] == b"hostfs"
    assert b"nodev\tproc" in await b.read(b"/proc/filesystems", pid)


# --- a peer that answers later ------------------------------------------------------------


async def test_handler_rerun_when_pm_answers_late(nursery: trio.Nursery, console: Any) -> None:
    """PM busy: the lookup of /proc/7 waits for its answer in a task, then runs again."""
    lattice = Lattice()
    lattice.register(p.KERNEL_PID)
    lattice.register(p.PM_PID)                 # no handler: requests queue for recv
    srv = VfsServer(lattice, console=console, mounts=[])
    lattice.connect_local(p.KERNEL_PID, p.VFS_PID)
    lattice.connect_local(p.PM_PID, p.VFS_PID)
    await nursery.start(srv.serve)
    asked: list[int] = []

    async def fake_pm() -> None:
        while True:
            msg = await lattice.recv(p.PM_PID)
            body = msg.body
            asked.append(body.pid)
            if body.pid == 7:
                reply = p.ProcInfoReply(call=p.PROC_INFO, pid=7, ppid=1, pgid=7, sid=7,
                                        state=ord("S"), euid=1000, egid=100, comm=b"late",
                                        data=b"late\0")
            else:
                reply = p.error_reply_for(msg.m_type, errno.ESRCH)
            await trio.sleep(0.01)
            lattice.reply(p.PM_PID, msg, reply)

    nursery.start_soon(fake_pm)
    st = (await lattice.sendrec(p.KERNEL_PID, p.VFS_PID, p.VfsStat(
        caller=1, dirfd=AT_FDCWD, flags=0, path=b"/proc/7"))).body
    assert not st.error and (st.uid, st.gid) == (1000, 100) and stat.S_ISDIR(st.mode)
    assert 7 in asked
    gone = (await lattice.sendrec(p.KERNEL_PID, p.VFS_PID, p.VfsStat(
        caller=1, dirfd=AT_FDCWD, flags=0, path=b"/proc/8"))).body
    assert gone.error == errno.ENOENT
    srv.stop()



