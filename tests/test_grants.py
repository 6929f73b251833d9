"""Memory grants (lib/grants.py): the capability's bindings, and the bulk data path
of read/write/pread/readv/getdents64 through them -- one VFS request per call,
partial faults as Linux has them, every grant revoked when its call ends."""
from __future__ import annotations

import errno
import os
import struct
from typing import Any

import pytest
import trio

from xinim_host.kernel.calls.base import SyscallContext
from xinim_host.kernel.kernel import Kernel
from xinim_host.lib import linux_abi as abi
from xinim_host.lib import protocol as p
from xinim_host.lib.errors import SysError
from xinim_host.lib.grants import GRANT_READ, GRANT_WRITE, GrantTable, skip
from xinim_host.lib.ipc import Lattice
from xinim_host.lib.syscalls import Sys
from xinim_host.lib.usermem import FlatMemory
from xinim_host.vfs_fuse.server import VfsServer

BASE = 0x10000
SIZE = 4 << 20
PID = 1


# --- the capability ------------------------------------------------------------------

def test_grant_checks_every_binding() -> None:
    table, mem = GrantTable(), FlatMemory(8192, base=BASE)
    g = table.grant(0, 5, p.VFS_PID, mem, [(BASE, 100)], GRANT_WRITE)
    assert table.check(g.gid, 0, 5, p.VFS_PID, GRANT_WRITE) is g
    for granter, owner, grantee, access in ((7, 5, p.VFS_PID, GRANT_WRITE),   # another kernel
                                            (0, 6, p.VFS_PID, GRANT_WRITE),   # another caller
                                            (0, 5, p.PM_PID, GRANT_WRITE),    # another server
                                            (0, 5, p.VFS_PID, GRANT_READ)):   # not granted
        with pytest.raises(SysError) as err:
            table.check(g.gid, granter, owner, grantee, access)
        assert err.value.errno == errno.EFAULT
    with pytest.raises(SysError):
        table.check(g.gid + 1, 0, 5, p.VFS_PID, GRANT_WRITE)    # no such grant
    table.revoke(g)
    assert len(table) == 0
    with pytest.raises(SysError):
        table.check(g.gid, 0, 5, p.VFS_PID, GRANT_WRITE)
    with pytest.raises(SysError):                               # a kept reference is dead too
        g.copy_to(0, b"x")


def test_grant_copies_within_its_segments_only() -> None:
    table, mem = GrantTable(), FlatMemory(8192, base=BASE)
    mem.write(BASE, bytes(range(256)) * 32)
    g = table.grant(0, 5, 2, mem, [(BASE + 10, 5), (BASE + 100, 5)], GRANT_READ | GRANT_WRITE)
    assert g.size == 10
    assert g.copy_from(0, 10) == bytes(range(10, 15)) + bytes(range(100, 105))
    assert g.copy_from(3, 4) == bytes([13, 14, 100, 101])
    assert g.copy_to(4, b"ABC") == 3
    assert mem.read(BASE + 14, 1) == b"A" and mem.read(BASE + 100, 2) == b"BC"
    with pytest.raises(SysError):
        g.copy_to(8, b"xyz")                                    # past the grant's end
    ro = table.grant(0, 5, 2, mem, [(BASE, 5)], GRANT_READ)
    with pytest.raises(SysError):
        ro.copy_to(0, b"x")
    assert skip([(1, 5), (10, 5)], 7) == ((12, 3),)


def test_grant_copy_stops_at_the_first_missing_page() -> None:
    table, mem = GrantTable(), FlatMemory(8192, base=BASE)
    end = BASE + 8192
    g = table.grant(0, 5, 2, mem, [(end - 100, 300)], GRANT_READ | GRANT_WRITE)
    assert g.copy_to(0, b"z" * 300) == 100                      # what fits, as copy_to_user
    assert g.copy_from(0, 300) == b"z" * 100


# --- the bulk data path, kernel to VFS ---------------------------------------------------

class Rig:
    def __init__(self, lattice: Lattice, kernel: Kernel, vfs: VfsServer) -> None:
        self.lattice, self.kernel, self.vfs = lattice, kernel, vfs
        self.mem = FlatMemory(SIZE, base=BASE)
        self.seen: list[int] = []

    async def call(self, nr: int, *args: int) -> int:
        ctx = SyscallContext(pid=PID, args=tuple(args) + (0,) * (6 - len(args)), mem=self.mem)
        result = await self.kernel.syscall(nr, ctx)
        assert len(self.lattice.grants) == 0, "a grant outlived its call"
        return result

    def path(self, addr: int, name: bytes) -> int:
        self.mem.write(addr, name + b"\0")
        return addr


@pytest.fixture
async def rig(nursery: trio.Nursery, lattice: Lattice, console: Any) -> Rig:
    kernel = Kernel(lattice, console)
    vfs = VfsServer(lattice, console=console)
    lattice.connect_local(p.KERNEL_PID, p.VFS_PID)
    await nursery.start(vfs.serve)
    r = Rig(lattice, kernel, vfs)
    handle = vfs.endpoint.handler

    def counting(delivery: Any) -> None:
        r.seen.append(getattr(getattr(delivery, "body", None), "M_TYPE", -1))
        handle(delivery)
    vfs.endpoint.handler = counting
    yield r
    vfs.stop()


async def test_big_write_and_read_take_one_request_each(rig: Rig) -> None:
    data = os.urandom(3 << 20)
    buf = BASE + 4096
    rig.mem.write(buf, data)
    fd = await rig.call(Sys.OPENAT, abi.AT_FDCWD & 0xFFFFFFFFFFFFFFFF,
                        rig.path(BASE, b"/tmp/big"), os.O_RDWR | os.O_CREAT, 0o644)
    assert fd >= 0
    rig.seen.clear()
    assert await rig.call(Sys.WRITE, fd, buf, len(data)) == len(data)
    assert rig.seen == [p.VFS_WRITE_GRANT]
    assert await rig.call(Sys.LSEEK, fd, 0, os.SEEK_SET) == 0
    rig.mem.write(buf, bytes(len(data)))
    rig.seen.clear()
    assert await rig.call(Sys.READ, fd, buf, len(data) + 4096) == len(data)   # to the end
    assert rig.seen == [p.VFS_READ_GRANT]
    assert rig.mem.read(buf, len(data)) == data
    # pread at an offset, the position unmoved
    assert await rig.call(Sys.PREAD64, fd, buf, 10, 1000) == 10
    assert rig.mem.read(buf, 10) == data[1000:1010]
    assert await rig.call(Sys.LSEEK, fd, 0, os.SEEK_CUR) == len(data)


async def test_readv_fills_every_buffer_in_one_request(rig: Rig) -> None:
    fd = await rig.call(Sys.OPENAT, abi.AT_FDCWD & 0xFFFFFFFFFFFFFFFF,
                        rig.path(BASE, b"/tmp/v"), os.O_RDWR | os.O_CREAT, 0o644)
    text = bytes(range(256)) * 64
    rig.mem.write(BASE + 8192, text)
    assert await rig.call(Sys.WRITE, fd, BASE + 8192, len(text)) == len(text)
    assert await rig.call(Sys.LSEEK, fd, 0, os.SEEK_SET) == 0
    iov = BASE + 4096
    bufs = [(BASE + 65536, 100), (BASE + 65536 + 1000, 0), (BASE + 131072, 5000)]
    rig.mem.write(iov, b"".join(struct.pack("<QQ", a, n) for a, n in bufs))
    rig.seen.clear()
    assert await rig.call(Sys.READV, fd, iov, len(bufs)) == 5100
    assert rig.seen == [p.VFS_READ_GRANT]
    assert rig.mem.read(BASE + 65536, 100) == text[:100]
    assert rig.mem.read(BASE + 131072, 5000) == text[100:5100]


async def test_read_into_a_buffer_that_ends_early(rig: Rig) -> None:
    """As Linux: what fits arrives, the count says so, the position covers only it;
    a buffer with no room at all is EFAULT."""
    fd = await rig.call(Sys.OPENAT, abi.AT_FDCWD & 0xFFFFFFFFFFFFFFFF,
                        rig.path(BASE, b"/tmp/f"), os.O_RDWR | os.O_CREAT, 0o644)
    rig.mem.write(BASE + 4096, b"q" * 20000)
    assert await rig.call(Sys.WRITE, fd, BASE + 4096, 20000) == 20000
    assert await rig.call(Sys.LSEEK, fd, 0, os.SEEK_SET) == 0
    end = BASE + SIZE
    assert await rig.call(Sys.READ, fd, end - 3000, 10000) == 3000
    assert await rig.call(Sys.LSEEK, fd, 0, os.SEEK_CUR) == 3000
    assert await rig.call(Sys.READ, fd, end, 100) == -errno.EFAULT
    assert await rig.call(Sys.WRITE, fd, end - 10, 100) == 10      # a write takes what is there


async def test_getdents64_in_one_request(rig: Rig) -> None:
    for i in range(300):
        fd = await rig.call(Sys.OPENAT, abi.AT_FDCWD & 0xFFFFFFFFFFFFFFFF,
                            rig.path(BASE, b"/tmp/name-%03d" % i), os.O_WRONLY | os.O_CREAT, 0o644)
        assert await rig.call(Sys.CLOSE, fd) == 0
    dfd = await rig.call(Sys.OPENAT, abi.AT_FDCWD & 0xFFFFFFFFFFFFFFFF, rig.path(BASE, b"/tmp"),
                         os.O_RDONLY | os.O_DIRECTORY, 0)
    rig.seen.clear()
    n = await rig.call(Sys.GETDENTS64, dfd, BASE + 8192, 65536)
    assert rig.seen == [p.VFS_GETDENTS_GRANT]
    raw, names, pos = rig.mem.read(BASE + 8192, n), [], 0
    while pos < n:
        reclen = struct.unpack_from("<H", raw, pos + 16)[0]
        names.append(raw[pos + 19:pos + reclen].split(b"\0")[0])
        pos += reclen
    assert sorted(names) == sorted([b".", b".."] + [b"name-%03d" % i for i in range(300)])
    assert await rig.call(Sys.GETDENTS64, dfd, BASE + 8192, 65536) == 0


async def test_a_grant_from_another_kernel_is_refused(rig: Rig) -> None:
    """A request naming a grant the sending endpoint did not make is EFAULT: a joined
    node's kernel cannot reach this node's processes through a guessed id."""
    rig.lattice.register(p.node_kernel_pid(3))
    rig.lattice.connect_local(p.node_kernel_pid(3), p.VFS_PID)
    g = rig.lattice.grants.grant(p.KERNEL_PID, PID, p.VFS_PID, rig.mem, [(BASE, 10)], GRANT_WRITE)
    reply = await rig.lattice.sendrec(p.node_kernel_pid(3), p.VFS_PID,
                                      p.VfsReadGrant(caller=p.node_kernel_pid(3), fd=0,
                                                     grant=g.gid))
    assert reply.body.error == errno.EFAULT
    rig.lattice.grants.revoke(g)
