"""The file-call handlers (kernel/calls/files.py) against a booted system, in
process: the behaviour issue 4's programs depend on and the fast paths the
benchmark asked for (block copies, multi-message getdents64, reads that never
wait once they have data, xattrs answered like a filesystem without them)."""
from __future__ import annotations

import errno
import os
import struct
from typing import Any, AsyncIterator, Callable

import pytest
import trio

from xinim_host.lib import linux_abi as abi
from xinim_host.lib import protocol as p
from xinim_host.system.boot import BootConfig, System, booted
from xinim_host.kernel.calls import files
from xinim_host.kernel.calls.base import SyscallContext
from xinim_host.kernel.kernel import RunningCall
from xinim_host.lib.syscalls import Sys
from xinim_host.lib.usermem import FlatMemory
from xinim_host.vfs_fuse import handlers_io

MEM_SIZE = 1 << 20
BASE = 0x10000
END = BASE + MEM_SIZE           # first address past the caller's memory: EFAULT
PATH, BUF, AUX = BASE, BASE + 0x1000, BASE + 0x80000
AT = abi.AT_FDCWD & (1 << 64) - 1
DIRENT = struct.Struct("<QqHB")


class Caller:
    """Init (pid 1) making syscalls through the kernel with a flat memory."""

    def __init__(self, system: System) -> None:
        self.system, self.kernel = system, system.kernel
        self.mem = FlatMemory(MEM_SIZE, base=BASE)

    def ctx(self, *args: int) -> SyscallContext:
        return SyscallContext(pid=p.INIT_PID, args=tuple(a & (1 << 64) - 1 for a in args)
                              + (0,) * (6 - len(args)), mem=self.mem)

    async def __call__(self, nr: int, *args: int) -> int:
        with trio.fail_after(10):
            return await self.kernel.syscall(nr, self.ctx(*args))

    def handler(self, fn: Callable[..., Any], *args: int) -> int:
        """A handler that has no XINIM number yet, run as the dispatcher would."""
        c = self.ctx(*args)
        result = RunningCall(self.kernel, fn(self.kernel, c), c, lambda r: None).step(
            None, None, sync=True)
        assert result is not None, "handler did not finish at once"
        return result

    def path(self, text: str, at: int = PATH) -> int:
        self.mem.write(at, text.encode() + b"\0")
        return at

    async def open(self, path: str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
        fd = await self(Sys.OPENAT, AT, self.path(path), flags, mode)
        assert fd >= 0, (path, fd)
        return fd

    async def write_file(self, path: str, data: bytes) -> None:
        fd = await self.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        self.mem.write(AUX, data)
        assert await self(Sys.WRITE, fd, AUX, len(data)) == len(data)
        assert await self(Sys.CLOSE, fd) == 0

    async def pipe(self) -> tuple[int, int]:
        assert await self(Sys.PIPE2, AUX, 0) == 0
        return abi.TWO_INTS.unpack(self.mem.read(AUX, 8))


class NullConsole:
    def write(self, data: bytes) -> int:
        return len(data)

    async def read(self, count: int) -> bytes:
        await trio.sleep_forever()
        return b""


@pytest.fixture
async def caller() -> AsyncIterator[Caller]:
    async with booted(BootConfig(console=NullConsole(), quiet=True)) as system:
        yield Caller(system)


def test_read_more_is_one_value_on_both_sides() -> None:
    # one definition, in the protocol: the kernel side has no copy of its own
    assert not hasattr(files, "READ_MORE")
    assert handlers_io.READ_MORE == p.READ_MORE
    assert p.READ_MORE < -1


# --- read ------------------------------------------------------------------------------

async def test_pipe_read_returns_what_is_there_without_waiting(caller: Caller) -> None:
    """A pipe holding exactly DATA_MAX bytes: read(64 KiB) gives them, it does not
    wait for more (the writer is still open)."""
    r, w = await caller.pipe()
    for size in (p.DATA_MAX, 3 * p.DATA_MAX, 10000, 1):
        caller.mem.write(AUX, bytes([size % 251]) * size)
        assert await caller(Sys.WRITE, w, AUX, size) == size
        assert await caller(Sys.READ, r, BUF, 65536) == size
        assert caller.mem.read(BUF, size) == bytes([size % 251]) * size


async def test_pipe_read_still_waits_for_the_first_byte(caller: Caller) -> None:
    r, w = await caller.pipe()
    got: list[int] = []

    async def reader() -> None:
        got.append(await caller(Sys.READ, r, BUF, 65536))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.sleep(0.05)
        assert got == []                  # parked: an empty pipe with a writer
        caller.mem.write(AUX, b"late")
        assert await caller(Sys.WRITE, w, AUX, 4) == 4
    assert got == [4] and caller.mem.read(BUF, 4) == b"late"


async def test_large_read_and_write_of_a_ramfs_file(caller: Caller) -> None:
    data = os.urandom(300_000)
    await caller.write_file("/tmp/big", data)
    fd = await caller.open("/tmp/big")
    assert await caller(Sys.READ, fd, BUF, 400_000) == len(data)
    assert caller.mem.read(BUF, len(data)) == data
    assert await caller(Sys.READ, fd, BUF, 10) == 0
    assert await caller(Sys.PREAD64, fd, BUF, 5000, 1000) == 5000
    assert caller.mem.read(BUF, 5000) == data[1000:6000]


async def test_read_into_a_buffer_that_ends_early(caller: Caller) -> None:
    """copy_to_user semantics: the bytes that fit, the position right after them."""
    data = bytes(range(256)) * 64                         # 16 KiB
    await caller.write_file("/tmp/f", data)
    fd = await caller.open("/tmp/f")
    near_end = END - 5000                                  # room for 5000 bytes only
    assert await caller(Sys.READ, fd, near_end, 12000) == 5000
    assert caller.mem.read(near_end, 5000) == data[:5000]
    assert await caller(Sys.LSEEK, fd, 0, os.SEEK_CUR) == 5000
    # nothing fits: EFAULT, and the position has not moved
    assert await caller(Sys.READ, fd, END + 4096, 100) == -errno.EFAULT
    assert await caller(Sys.READ, fd, 1, 100) == -errno.EFAULT
    assert await caller(Sys.LSEEK, fd, 0, os.SEEK_CUR) == 5000
    assert await caller(Sys.READ, fd, BUF, 10) == 10
    assert caller.mem.read(BUF, 10) == data[5000:5010]


async def test_write_from_a_buffer_that_ends_early(caller: Caller) -> None:
    fd = await caller.open("/tmp/w", os.O_RDWR | os.O_CREAT)
    start = END - 6000
    caller.mem.write(start, b"w" * 6000)
    assert await caller(Sys.WRITE, fd, start, 20000) == 6000
    assert await caller(Sys.WRITE, fd, END, 10) == -errno.EFAULT
    assert await caller(Sys.WRITE, fd, 1, 10) == -errno.EFAULT
    assert await caller(Sys.PREAD64, fd, BUF, 10000, 0) == 6000
    assert caller.mem.read(BUF, 6000) == b"w" * 6000


async def test_readv_writev_across_blocks(caller: Caller) -> None:
    fd = await caller.open("/tmp/v", os.O_RDWR | os.O_CREAT)
    parts = [b"a" * 5000, b"", b"b" * 70000, b"c"]
    iov, addr = bytearray(), AUX
    for part in parts:
        caller.mem.write(addr, part)
        iov += abi.IOVEC.pack(addr, len(part))
        addr += len(part) + 16
    caller.mem.write(BUF, bytes(iov))
    total = sum(map(len, parts))
    assert await caller(Sys.WRITEV, fd, BUF, len(parts)) == total
    assert await caller(Sys.PREAD64, fd, AUX + 0x40000, total, 0) == total
    assert caller.mem.read(AUX + 0x40000, total) == b"".join(parts)


# --- getdents64 ------------------------------------------------------------------------

def _names(raw: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(raw):
        _, _, reclen, _ = DIRENT.unpack_from(raw, pos)
        out.append(raw[pos + DIRENT.size:pos + reclen].split(b"\0", 1)[0])
        pos += reclen
    return out


async def _listing(caller: Caller, path: str, bufsize: int) -> tuple[list[bytes], int]:
    fd = await caller.open(path, os.O_RDONLY | os.O_DIRECTORY)
    names, calls = [], 0
    while True:
        n = await caller(Sys.GETDENTS64, fd, BUF, bufsize)
        assert n >= 0
        calls += 1
        if n == 0:
            break
        assert n <= bufsize
        names += _names(caller.mem.read(BUF, n))
    await caller(Sys.CLOSE, fd)
    return names, calls


@pytest.mark.parametrize("where", ["/tmp/many", "/usr/bin"])
async def test_getdents64_fills_a_large_buffer(caller: Caller, where: str) -> None:
    if where.startswith("/tmp"):
        assert await caller(Sys.MKDIRAT, AT, caller.path(where), 0o755) == 0
        for i in range(600):
            fd = await caller.open(f"{where}/entry-{i:04d}-{'x' * (i % 40)}",
                                   os.O_WRONLY | os.O_CREAT)
            await caller(Sys.CLOSE, fd)
        expected = {f"entry-{i:04d}-{'x' * (i % 40)}".encode() for i in range(600)}
    else:
        expected = {os.fsencode(n) for n in os.listdir(where)}
    big, big_calls = await _listing(caller, where, 1 << 16)
    small, small_calls = await _listing(caller, where, 300)
    assert set(big) == set(small) == expected | {b".", b".."}
    assert len(big) == len(small) == len(expected) + 2          # each name once
    record_bytes = sum((DIRENT.size + len(n) + 1 + 7) & ~7 for n in big)
    assert record_bytes > 4 * p.DATA_MAX
    # one call per 64 KiB (plus the final 0), not one per DATA_MAX
    assert big_calls <= record_bytes // (1 << 16) + 2
    assert small_calls > big_calls


async def test_getdents64_errors(caller: Caller) -> None:
    fd = await caller.open("/tmp", os.O_RDONLY | os.O_DIRECTORY)
    assert await caller(Sys.GETDENTS64, fd, BUF, 0) == -errno.EINVAL
    assert await caller(Sys.GETDENTS64, fd, BUF, 10) == -errno.EINVAL
    assert await caller(Sys.GETDENTS64, 99, BUF, 4096) == -errno.EBADF
    f = await caller.open("/etc/passwd")
    assert await caller(Sys.GETDENTS64, f, BUF, 4096) == -errno.ENOTDIR


# --- xattrs, statx, fadvise64 ----------------------------------------------------------

async def test_xattrs_are_not_supported_on_existing_files(caller: Caller) -> None:
    name = caller.path("user.x", AUX)
    for nr in (Sys.GETXATTR, Sys.LGETXATTR, Sys.SETXATTR, Sys.LSETXATTR):
        assert await caller(nr, caller.path("/etc/passwd"), name, BUF, 10, 0) == -errno.EOPNOTSUPP
        assert await caller(nr, caller.path("/tmp"), name, BUF, 10, 0) == -errno.EOPNOTSUPP
        assert await caller(nr, caller.path("/nonexistent"), name, BUF, 10, 0) == -errno.ENOENT
        assert await caller(nr, caller.path("/etc/passwd/x"), name, BUF, 10, 0) == -errno.ENOTDIR
        assert await caller(nr, caller.path(""), name, BUF, 10, 0) == -errno.ENOENT
    for nr in (Sys.LISTXATTR, Sys.LLISTXATTR):
        assert await caller(nr, caller.path("/etc/passwd"), BUF, 100) == 0
        assert await caller(nr, caller.path("/nonexistent"), BUF, 100) == -errno.ENOENT
    # a dangling symlink: l* look at the link, the others follow it
    assert await caller(Sys.SYMLINKAT, caller.path("/nowhere", AUX + 64), AT,
                        caller.path("/tmp/dangling")) == 0
    assert await caller(Sys.LGETXATTR, caller.path("/tmp/dangling"), name, BUF, 10) == -errno.EOPNOTSUPP
    assert await caller(Sys.GETXATTR, caller.path("/tmp/dangling"), name, BUF, 10) == -errno.ENOENT
    fd = await caller.open("/etc/passwd")
    assert await caller(Sys.FGETXATTR, fd, name, BUF, 10) == -errno.EOPNOTSUPP
    assert await caller(Sys.FLISTXATTR, fd, BUF, 10) == 0
    assert await caller(Sys.FGETXATTR, 99, name, BUF, 10) == -errno.EBADF


async def test_statx_errors_in_linux_order(caller: Caller) -> None:
    """The lookup's errors come before a bad buffer's EFAULT."""
    missing, there = caller.path("/nonexistent"), caller.path("/etc/passwd", AUX)
    assert await caller(Sys.STATX, AT, missing, 0, 0x7FF, 1) == -errno.ENOENT
    assert await caller(Sys.STATX, AT, there, 0, 0x7FF, 1) == -errno.EFAULT
    assert await caller(Sys.STATX, AT, there, 0, 0x7FF, BUF) == 0
    fields = abi.STATX.unpack_from(caller.mem.read(BUF, abi.STATX_SIZE))
    assert fields[6] & 0o170000 == 0o100000 and fields[8] > 0    # mode, ino


async def test_fadvise64(caller: Caller) -> None:
    fd = await caller.open("/etc/passwd")
    r, w = await caller.pipe()
    opath = await caller.open("/etc/passwd", 0o10000000)           # O_PATH
    run = caller.handler
    for advice in range(6):
        assert run(files.sys_fadvise64, fd, 0, 0, advice) == 0
    assert run(files.sys_fadvise64, fd, 100, 1 << 20, 4) == 0
    assert run(files.sys_fadvise64, fd, 0, 0, 6) == -errno.EINVAL
    assert run(files.sys_fadvise64, fd, 0, -1, 0) == -errno.EINVAL
    assert run(files.sys_fadvise64, 99, 0, 0, 0) == -errno.EBADF
    assert run(files.sys_fadvise64, opath, 0, 0, 0) == -errno.EBADF
    assert run(files.sys_fadvise64, r, 0, 0, 0) == -errno.ESPIPE
    assert run(files.sys_fadvise64, w, 0, 0, 9) == -errno.ESPIPE   # ESPIPE before EINVAL
    d = await caller.open("/tmp", os.O_RDONLY | os.O_DIRECTORY)
    assert run(files.sys_fadvise64, d, 0, 0, 0) == 0


async def test_zero_length_transfers_still_check_the_fd(caller: Caller) -> None:
    """read/write of 0 bytes: 0, or the fd's own error (as Linux)."""
    d = await caller.open("/tmp", os.O_RDONLY | os.O_DIRECTORY)
    f = await caller.open("/etc/passwd")
    r, w = await caller.pipe()
    assert await caller(Sys.READ, d, BUF, 0) == -errno.EISDIR
    assert await caller(Sys.READ, 99, BUF, 0) == -errno.EBADF
    assert await caller(Sys.READ, w, BUF, 0) == -errno.EBADF
    assert await caller(Sys.READ, r, BUF, 0) == 0          # empty pipe: no wait
    assert await caller(Sys.WRITE, w, BUF, 0) == 0
    assert await caller(Sys.WRITE, r, BUF, 0) == -errno.EBADF
    assert await caller(Sys.WRITE, f, BUF, 0) == -errno.EBADF
    assert await caller(Sys.PREAD64, f, BUF, 0, 5) == 0
