"""Pipes, FIFOs and poll through the message API: blocking by parked requests."""
from __future__ import annotations

import hashlib
import os
import stat
import struct

import trio

from xinim_host.lib.errors import SysError

from xinim_host.lib import protocol as p

from support.vfs import AT_FDCWD, Vfs, timeboxed, vfs  # noqa: F401 -- fixture

POLLIN, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x4, 0x8, 0x10, 0x20


async def make_pipe(vfs: Vfs, flags: int = 0, pid: int = 1) -> tuple[int, int]:
    r = await vfs.ok(p.VfsPipe(caller=pid, flags=flags))
    return r.read_fd, r.write_fd


def pollfds(*pairs: tuple[int, int]) -> bytes:
    return b"".join(struct.pack("<ihh", fd, ev, 0) for fd, ev in pairs)


def revents(data: bytes) -> list[int]:
    return [rev for _, _, rev in struct.iter_unpack("<ihh", data)]


@timeboxed()
async def test_one_mib_through_a_pipe(vfs: Vfs) -> None:
    rfd, wfd = await make_pipe(vfs)
    payload = os.urandom(1 << 20)
    got = bytearray()

    async def writer() -> None:
        assert await vfs.write(wfd, payload) == len(payload)
        await vfs.close(wfd)

    async def reader() -> None:
        while True:
            r = await vfs.ok(p.VfsRead(caller=1, fd=rfd, count=4096))
            if not r.data:
                return                                   # EOF after the writer closed
            got.extend(r.data)

    async with trio.open_nursery() as n:
        n.start_soon(reader)
        n.start_soon(writer)
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()


@timeboxed()
async def test_other_requests_served_while_blocked(vfs: Vfs) -> None:
    rfd, wfd = await make_pipe(vfs)
    result: list[bytes] = []

    async def reader() -> None:
        result.append((await vfs.ok(p.VfsRead(caller=1, fd=rfd, count=100))).data)

    async with trio.open_nursery() as n:
        n.start_soon(reader)
        await trio.sleep(0.01)
        assert not result                               # parked
        await vfs.create(b"/meanwhile", b"served")      # the server keeps serving
        assert (await vfs.stat(b"/meanwhile")).size == 6
        await vfs.write(wfd, b"wake up")
    assert result == [b"wake up"]


@timeboxed()
async def test_close_reader_gives_epipe(vfs: Vfs) -> None:
    rfd, wfd = await make_pipe(vfs)
    await vfs.write(wfd, b"x" * 65536)                  # fill the buffer
    errs: list[str] = []

    async def blocked_writer() -> None:
        errs.append(await vfs.err(p.VfsWrite(caller=1, fd=wfd, data=b"more")))

    async with trio.open_nursery() as n:
        n.start_soon(blocked_writer)
        await trio.sleep(0.01)
        assert not errs
        await vfs.close(rfd)
    assert errs == ["EPIPE"]                              # the parked writer
    assert await vfs.err(p.VfsWrite(caller=1, fd=wfd, data=b"again")) == "EPIPE"


@timeboxed()
async def test_eof_when_last_writer_closes(vfs: Vfs) -> None:
    rfd, wfd = await make_pipe(vfs)
    await vfs.fork(1, 5)                                 # 5 holds the write end too
    await vfs.write(wfd, b"tail")
    await vfs.close(wfd)
    assert await vfs.read1(rfd, 10) == b"tail"
    got: list[bytes] = []

    async def reader() -> None:
        got.append((await vfs.ok(p.VfsRead(caller=1, fd=rfd, count=10))).data)

    async with trio.open_nursery() as n:
        n.start_soon(reader)
        await trio.sleep(0.01)
        assert not got                                   # 5's writer keeps it open
        await vfs.ok(p.VfsExit(pid=5))                   # last writer gone
    assert got == [b""]


@timeboxed()
async def test_nonblocking_pipe(vfs: Vfs) -> None:
    rfd, wfd = await make_pipe(vfs, os.O_NONBLOCK | os.O_CLOEXEC)
    assert await vfs.err(p.VfsRead(caller=1, fd=rfd, count=10)) == "EAGAIN"
    for _ in range(16):
        await vfs.write(wfd, b"y" * 4096)
    assert await vfs.err(p.VfsWrite(caller=1, fd=wfd, data=b"z")) == "EAGAIN"
    r = await vfs.ok(p.VfsIoctl(caller=1, fd=rfd, request=0x541B, arg=0))   # FIONREAD
    assert struct.unpack("<i", r.data)[0] == 65536
    assert (await vfs.ok(p.VfsFcntl(caller=1, fd=rfd, cmd=1, arg=0))).result == 1  # cloexec
    assert (await vfs.ok(p.VfsFcntl(caller=1, fd=wfd, cmd=1032, arg=0))).result == 65536
    assert await vfs.err(p.VfsLseek(caller=1, fd=rfd, offset=0, whence=0)) == "ESPIPE"
    assert await vfs.err(p.VfsRead(caller=1, fd=rfd, count=1, offset=0)) == "ESPIPE"
    st = await vfs.ok(p.VfsFstat(caller=1, fd=rfd))
    assert stat.S_ISFIFO(st.mode)


@timeboxed()
async def test_atomic_writes_are_not_split(vfs: Vfs) -> None:
    rfd, wfd = await make_pipe(vfs, os.O_NONBLOCK)
    await vfs.write(wfd, b"a" * (65536 - 100))
    # 4096 bytes do not fit in the 100 left: all or nothing (PIPE_BUF atomicity)
    assert await vfs.err(p.VfsWrite(caller=1, fd=wfd, data=b"b" * 4096)) == "EAGAIN"
    assert await vfs.write(wfd, b"c" * 100) == 100


@timeboxed()
async def test_poll(vfs: Vfs) -> None:
    rfd, wfd = await make_pipe(vfs)
    r = await vfs.ok(p.VfsPoll(caller=1, timeout_ms=0,
                               data=pollfds((rfd, POLLIN), (wfd, POLLOUT), (77, POLLIN),
                                            (-1, POLLIN))))
    assert r.result == 2 and revents(r.data) == [0, POLLOUT, POLLNVAL, 0]
    # blocking poll woken by a write
    out: list[list[int]] = []

    async def poller() -> None:
        rr = await vfs.ok(p.VfsPoll(caller=1, timeout_ms=-1, data=pollfds((rfd, POLLIN))))
        out.append(revents(rr.data))

    async with trio.open_nursery() as n:
        n.start_soon(poller)
        await trio.sleep(0.01)
        assert not out
        await vfs.write(wfd, b"!")
    assert out == [[POLLIN]]
    # timeout
    await vfs.read(rfd, 1)
    r = await vfs.ok(p.VfsPoll(caller=1, timeout_ms=50, data=pollfds((rfd, POLLIN))))
    assert r.result == 0 and revents(r.data) == [0]
    # hangup / error
    await vfs.close(wfd)
    r = await vfs.ok(p.VfsPoll(caller=1, timeout_ms=0, data=pollfds((rfd, POLLIN))))
    assert revents(r.data) == [POLLHUP]
    # regular files are always ready
    await vfs.create(b"/f")
    fd = await vfs.open(b"/f", os.O_RDWR)
    r = await vfs.ok(p.VfsPoll(caller=1, timeout_ms=-1, data=pollfds((fd, POLLIN | POLLOUT))))
    assert revents(r.data) == [POLLIN | POLLOUT]


@timeboxed()
async def test_cancel_interrupts_blocked_calls(vfs: Vfs) -> None:
    await vfs.fork(1, 6)
    rfd, wfd = await make_pipe(vfs, pid=6)
    errs: list[str] = []

    async def blocked(msg: p.Payload) -> None:
        errs.append(await vfs.err(msg))

    async with trio.open_nursery() as n:
        n.start_soon(blocked, p.VfsRead(caller=6, fd=rfd, count=10))
        n.start_soon(blocked, p.VfsPoll(caller=6, timeout_ms=-1, data=pollfds((rfd, POLLIN))))
        await trio.sleep(0.02)
        assert (await vfs.ok(p.VfsCancel(pid=6))).result == 2
    assert errs == ["EINTR", "EINTR"]
    # the pipe still works afterwards
    await vfs.write(wfd, b"ok", pid=6)
    assert await vfs.read1(rfd, 2, pid=6) == b"ok"


@timeboxed()
async def test_fifo_open_waits_for_partner(vfs: Vfs) -> None:
    await vfs.ok(p.VfsMknod(caller=1, dirfd=AT_FDCWD, mode=stat.S_IFIFO | 0o666, dev=0,
                            path=b"/tmp/fifo"))
    assert await vfs.open_err(b"/tmp/fifo", os.O_WRONLY | os.O_NONBLOCK) == "ENXIO"
    nb = await vfs.open(b"/tmp/fifo", os.O_RDONLY | os.O_NONBLOCK)   # does not wait
    await vfs.close(nb)
    fds: list[int] = []

    async def reader() -> None:
        fds.append(await vfs.open(b"/tmp/fifo", os.O_RDONLY))

    async with trio.open_nursery() as n:
        n.start_soon(reader)
        await trio.sleep(0.01)
        assert not fds                                   # waiting for a writer
        wfd = await vfs.open(b"/tmp/fifo", os.O_WRONLY)
    rfd = fds[0]
    await vfs.write(wfd, b"through the fifo")
    assert await vfs.read1(rfd, 100) == b"through the fifo"
    await vfs.close(wfd)
    assert await vfs.read1(rfd, 100) == b""


@timeboxed()
async def test_fork_shares_pipe_and_exit_closes(vfs: Vfs) -> None:
    rfd, wfd = await make_pipe(vfs)
    await vfs.fork(1, 7)
    await vfs.close(rfd)                                  # parent keeps only the write end
    await vfs.write(wfd, b"to child")
    assert await vfs.read(rfd, 8, pid=7) == b"to child"
    await vfs.ok(p.VfsExit(pid=7))                        # the last reader leaves
    assert await vfs.err(p.VfsWrite(caller=1, fd=wfd, data=b"x")) == "EPIPE"


class QueueConsole:
    """A console with typed-in input: read waits for it; poll can sleep on it."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.pending = bytearray()
        self.arrived = trio.Event()

    def type(self, data: bytes) -> None:
        self.pending += data
        self.arrived.set()

    def write(self, data: bytes) -> int:
        self.out += data
        return len(data)

    def readable(self) -> bool:
        return bool(self.pending)

    async def wait_readable(self) -> None:
        while not self.pending:
            self.arrived = trio.Event()
            await self.arrived.wait()

    async def read(self, count: int) -> bytes:
        await self.wait_readable()
        data = bytes(self.pending[:count])
        del self.pending[:count]
        return data

    def ioctl(self, request: int, arg: bytes) -> tuple[int, bytes]:
        if request == 0x5401:                                   # TCGETS
            return 0, b"T" * 60
        raise SysError(25)


@timeboxed()
async def test_console_read_poll_and_cancel(nursery, lattice) -> None:
    from xinim_host.vfs_fuse.server import VfsServer
    cons = QueueConsole()
    lattice.register(p.KERNEL_PID)
    srv = VfsServer(lattice, console=cons, mounts=[])
    lattice.connect_local(p.KERNEL_PID, p.VFS_PID)
    await nursery.start(srv.serve)
    v = Vfs(lattice, srv, None, None)  # type: ignore[arg-type]
    with trio.fail_after(5):
        r = await v.ok(p.VfsIoctl(caller=1, fd=0, request=0x5401, arg=0))
        assert r.data == b"T" * 60
        # O_NONBLOCK read with nothing typed: EAGAIN; poll says not readable
        await v.ok(p.VfsFcntl(caller=1, fd=0, cmd=4, arg=os.O_NONBLOCK))
        assert await v.err(p.VfsRead(caller=1, fd=0, count=10)) == "EAGAIN"
        await v.ok(p.VfsFcntl(caller=1, fd=0, cmd=4, arg=0))
        r = await v.ok(p.VfsPoll(caller=1, timeout_ms=0, data=pollfds((0, POLLIN | POLLOUT))))
        assert revents(r.data) == [POLLOUT]
        got: list[bytes] = []

        async def reader() -> None:
            got.append(await v.read1(0, 100))

        async with trio.open_nursery() as n:
            n.start_soon(reader)
            await trio.sleep(0.01)
            assert not got
            cons.type(b"ls -l\n")
        assert got == [b"ls -l\n"]
        # a signal interrupts a blocked console read: EINTR
        errs: list[str] = []

        async def blocked_reader() -> None:
            errs.append(await v.err(p.VfsRead(caller=1, fd=0, count=10)))

        async with trio.open_nursery() as n:
            n.start_soon(blocked_reader)
            await trio.sleep(0.01)
            assert (await v.ok(p.VfsCancel(pid=1))).result == 1
        assert errs == ["EINTR"]
        # poll sleeps until input arrives
        polled: list[list[int]] = []

        async def poller() -> None:
            rr = await v.ok(p.VfsPoll(caller=1, timeout_ms=-1, data=pollfds((0, POLLIN))))
            polled.append(revents(rr.data))

        async with trio.open_nursery() as n:
            n.start_soon(poller)
            await trio.sleep(0.01)
            assert not polled
            cons.type(b"x")
        assert polled == [[POLLIN]]
    srv.stop()
