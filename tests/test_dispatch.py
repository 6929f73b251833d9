"""The dispatcher table and the calls the kernel serves itself."""
from __future__ import annotations

import errno
import logging
import struct
import time

import pytest
import trio
import trio.testing

from xinim_host.lib import protocol as p
from xinim_host.kernel.dispatch import SYSCALLS, SyscallContext
from xinim_host.lib.errors import SysError
from xinim_host.lib.ipc import Lattice
from xinim_host.kernel.kernel import Kernel
from xinim_host.lib.server import Request, Server
from xinim_host.lib.syscalls import Sys
from xinim_host.lib.usermem import FlatMemory

# docs/differences.md and lib/syscalls.py: XINIM syscall numbers
ABI_NAMES = {
    1: "debug_write", 2: "monotonic_ns", 3: "open", 4: "close", 5: "read", 6: "write",
    7: "lseek", 8: "stat", 9: "fstat", 10: "access", 11: "dup", 12: "dup2", 13: "pipe",
    14: "ioctl", 15: "fcntl", 16: "mkdir", 17: "rmdir", 18: "chdir", 19: "getcwd", 20: "link",
    21: "unlink", 22: "rename", 23: "chmod", 24: "chown", 25: "exit", 26: "fork", 27: "execve",
    28: "wait4", 29: "getpid", 30: "getppid", 31: "kill", 32: "signal", 33: "sigaction",
    34: "brk", 35: "mmap", 36: "munmap", 37: "mprotect", 38: "lattice_connect",
    39: "lattice_send", 40: "lattice_recv", 41: "lattice_close", 42: "time", 43: "gettimeofday",
    44: "clock_gettime", 45: "nanosleep", 46: "getuid", 47: "geteuid", 48: "getgid",
    49: "getegid",
}
OWNERS = {**{n: "kernel" for n in (1, 2, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49)},
          **{n: "vfs" for n in range(3, 25)}, **{n: "pm" for n in range(25, 34)},
          **{n: "mm" for n in range(34, 38)}}

BASE = 0x10000
TIMESPEC = struct.Struct("<qq")
BAD = 0xDEAD0000   # outside the FlatMemory


def test_table_covers_1_to_49() -> None:
    for nr in range(1, 50):
        entry = SYSCALLS.get(nr)
        assert entry is not None, f"syscall {nr} missing"
        assert entry.name == ABI_NAMES[nr] == Sys(nr).name.lower()
        assert entry.owner == OWNERS[nr], (nr, entry.owner)
        assert callable(entry.handler)
    assert all(isinstance(nr, int) and nr > 0 for nr in SYSCALLS)


@pytest.fixture
def kernel(lattice: Lattice, console) -> Kernel:
    return Kernel(lattice, console)


def ctx(*args: int, mem: FlatMemory | None = None, pid: int = 5, **creds: int) -> SyscallContext:
    return SyscallContext(pid=pid, args=tuple(args) + (0,) * (6 - len(args)),
                          mem=mem or FlatMemory(4096, base=BASE), **creds)


async def call(kernel: Kernel, nr: int, c: SyscallContext) -> int:
    with trio.fail_after(5):
        return await kernel.syscall(nr, c)


@pytest.mark.parametrize("nr", [0, -1, 9999, 1 << 20])
async def test_unknown_numbers_are_enosys_and_logged(kernel: Kernel, nr: int,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert nr not in SYSCALLS
    before = len(caplog.records)
    assert await call(kernel, nr, ctx()) == -errno.ENOSYS
    lines = [r for r in caplog.records[before:] if r.levelno >= logging.INFO]
    assert len(lines) == 1 and str(nr) in lines[0].getMessage()
    assert kernel.start(nr, ctx(), lambda r: None) == -errno.ENOSYS
    assert kernel.unknown_calls == 2


async def test_time(kernel: Kernel) -> None:
    mem = FlatMemory(4096, base=BASE)
    now = int(time.time())
    got = await call(kernel, Sys.TIME, ctx(0, mem=mem))
    assert now - 1 <= got <= now + 2
    got = await call(kernel, Sys.TIME, ctx(BASE + 8, mem=mem))
    assert struct.unpack("<q", mem.read(BASE + 8, 8))[0] == got
    assert await call(kernel, Sys.TIME, ctx(BAD)) == -errno.EFAULT


@pytest.mark.parametrize("clock,reference", [(0, time.time), (1, time.monotonic),
                                             (7, time.monotonic)])
async def test_clock_gettime(kernel: Kernel, clock: int, reference) -> None:
    mem = FlatMemory(4096, base=BASE)
    assert await call(kernel, Sys.CLOCK_GETTIME, ctx(clock, BASE, mem=mem)) == 0
    sec, nsec = TIMESPEC.unpack(mem.read(BASE, 16))
    assert 0 <= nsec < 10**9
    if clock != 7:   # BOOTTIME counts suspend too
        assert abs(sec + nsec / 1e9 - reference()) < 2


async def test_clock_gettime_errors(kernel: Kernel) -> None:
    assert await call(kernel, Sys.CLOCK_GETTIME, ctx(99, BASE)) == -errno.EINVAL
    assert await call(kernel, Sys.CLOCK_GETTIME, ctx((1 << 64) - 1, BASE)) == -errno.EINVAL
    assert await call(kernel, Sys.CLOCK_GETTIME, ctx(0, BAD)) == -errno.EFAULT
    assert await call(kernel, Sys.CLOCK_GETTIME, ctx(0, 0)) == -errno.EFAULT


async def test_gettimeofday(kernel: Kernel) -> None:
    mem = FlatMemory(4096, base=BASE)
    mem.write(BASE + 32, b"\xff" * 8)
    assert await call(kernel, Sys.GETTIMEOFDAY, ctx(BASE, BASE + 32, mem=mem)) == 0
    sec, usec = struct.unpack("<qq", mem.read(BASE, 16))
    assert abs(sec + usec / 1e6 - time.time()) < 2 and 0 <= usec < 10**6
    assert mem.read(BASE + 32, 8) == bytes(8)          # timezone: UTC
    assert await call(kernel, Sys.GETTIMEOFDAY, ctx(0, 0)) == 0
    assert await call(kernel, Sys.GETTIMEOFDAY, ctx(BAD, 0)) == -errno.EFAULT


async def test_monotonic_ns(kernel: Kernel) -> None:
    a = await call(kernel, Sys.MONOTONIC_NS, ctx())
    b = await call(kernel, Sys.MONOTONIC_NS, ctx())
    assert 0 < a <= b


async def test_nanosleep(kernel: Kernel, nursery: trio.Nursery) -> None:
    kernel.nursery = nursery
    mem = FlatMemory(4096, base=BASE)
    mem.write(BASE, TIMESPEC.pack(0, 30_000_000))
    start = trio.current_time()
    assert await call(kernel, Sys.NANOSLEEP, ctx(BASE, 0, mem=mem)) == 0
    assert trio.current_time() - start >= 0.03
    for bad in ((0, 10**9), (0, -1), (-1, 0)):
        mem.write(BASE, TIMESPEC.pack(*bad))
        assert await call(kernel, Sys.NANOSLEEP, ctx(BASE, 0, mem=mem)) == -errno.EINVAL
    assert await call(kernel, Sys.NANOSLEEP, ctx(BAD, 0)) == -errno.EFAULT


async def test_nanosleep_waits_without_blocking_the_loop(kernel: Kernel,
                                                         nursery: trio.Nursery) -> None:
    kernel.nursery = nursery
    mem = FlatMemory(4096, base=BASE)
    mem.write(BASE, TIMESPEC.pack(0, 50_000_000))
    results: list[int] = []
    assert kernel.start(Sys.NANOSLEEP, ctx(BASE, 0, mem=mem), results.append) is None
    await trio.testing.wait_all_tasks_blocked()
    assert results == []
    with trio.fail_after(5):
        while not results:
            await trio.sleep(0.01)
    assert results == [0]


async def test_credentials(kernel: Kernel) -> None:
    c = ctx(uid=1000, euid=1001, gid=1002, egid=1003)
    assert [await call(kernel, nr, c) for nr in (Sys.GETUID, Sys.GETEUID, Sys.GETGID,
                                                 Sys.GETEGID)] == [1000, 1001, 1002, 1003]
    assert await call(kernel, Sys.GETUID, ctx()) == 0


async def test_debug_write(kernel: Kernel, console) -> None:
    mem = FlatMemory(4096, base=BASE)
    mem.write(BASE + 100, b"hello, console\n")
    assert await call(kernel, Sys.DEBUG_WRITE, ctx(BASE + 100, 15, mem=mem)) == 15
    assert bytes(console.out) == b"hello, console\n"
    assert await call(kernel, Sys.DEBUG_WRITE, ctx(BASE + 100, 0, mem=mem)) == 0
    assert await call(kernel, Sys.DEBUG_WRITE, ctx(BAD, 5)) == -errno.EFAULT
    assert await call(kernel, Sys.DEBUG_WRITE, ctx(BASE + 4000, 200, mem=mem)) == -errno.EFAULT
    assert bytes(console.out) == b"hello, console\n"


# --- calls a server answers ------------------------------------------------------------


class FakePm(Server):
    pid = p.PM_PID
    reply_type = p.PROC_REPLY

    def __init__(self, lattice: Lattice) -> None:
        super().__init__(lattice)
        self.parked: list[Request] = []


def _getpid(pm: FakePm, req: Request) -> int:
    return req.caller


def _kill(pm: FakePm, req: Request) -> int:
    raise SysError(errno.EPERM)


def _wait4(pm: FakePm, req: Request) -> None:
    pm.parked.append(req)


FakePm.handlers = {p.PROC_GETPID: _getpid, p.PROC_KILL: _kill, p.PROC_WAIT4: _wait4}


async def test_server_calls_go_through_sendrec(kernel: Kernel, lattice: Lattice) -> None:
    pm = FakePm(lattice)
    lattice.connect_local(p.KERNEL_PID, p.PM_PID)
    assert await call(kernel, Sys.GETPID, ctx(pid=42)) == 42
    assert await call(kernel, Sys.KILL, ctx(1, 9)) == -errno.EPERM       # error reply: -errno
    assert await call(kernel, Sys.GETPPID, ctx()) == -errno.ENOSYS       # a type PM does not serve
    results: list[int] = []
    mem = FlatMemory(4096, base=BASE)
    assert kernel.start(Sys.WAIT4, ctx((1 << 64) - 1, BASE, 0, 0, mem=mem), results.append) is None
    assert results == []                      # PM parked it: the caller waits
    req = pm.parked.pop()
    req.reply(p.ProcWaitReply(result=9, status=0x100))
    assert results == [9]
    assert struct.unpack("<i", mem.read(BASE, 4))[0] == 0x100


async def test_server_calls_without_the_server(kernel: Kernel) -> None:
    """No PM endpoint at all: -ESRCH at once, not a hang."""
    assert await call(kernel, Sys.GETPID, ctx()) == -errno.ESRCH
