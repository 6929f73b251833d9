"""The kernel's memory-call handlers with a fake host side: MM decides, the
handler injects the host syscalls (checked here call by call), file maps are
filled through the real VFS server, failures are rolled back in MM."""
from __future__ import annotations

import errno
import math
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from xinim_host.kernel.renumber import LINUX_NUMBERS
from xinim_host.lib import protocol as p
from xinim_host.kernel.calls.base import HostCall, SyscallContext
from xinim_host.kernel.kernel import HostStep
from xinim_host.lib.ipc import Lattice
from xinim_host.kernel.kernel import Kernel
from xinim_host.lib.syscalls import Sys
from xinim_host.lib.usermem import FlatMemory
from xinim_host.lib.vm_abi import (
    DEFAULT_MMAP_BASE,
    MAP_ANONYMOUS,
    MAP_DENYWRITE,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from xinim_host.mm.server import MmServer
from xinim_host.vfs_fuse.server import VfsServer

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
PID = 5
WINDOW = 16 << 20                          # FlatMemory just below MM's default mmap base
LOW = DEFAULT_MMAP_BASE - WINDOW
HOST_BRK = 0x5555_5556_0000
NR = LINUX_NUMBERS
U64 = (1 << 64) - 1


@dataclass
class FakeHost:
    """The interceptor's part: records each injected syscall and answers it as
    Linux would on an address space that agrees with MM (or with ``fail``)."""

    mem: FlatMemory
    host_pid: int = 0
    calls: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)   # name -> -errno, once
    brk: int = HOST_BRK
    refuse_brk: bool = False

    def answer(self, op: HostCall) -> int:
        name = next(n for n, nr in NR.items() if nr == op.nr)
        args = tuple(op.args or ())
        self.calls.append((name, args))
        value = self.fail.pop(name, None)
        if value is None:
            value = self._answer(name, args)
        return value

    def _answer(self, name: str, args: tuple[int, ...]) -> int:
        if name == "mmap":
            self._zero(args[0], args[1])           # a fresh mapping reads as zeros
            return args[0]
        if name == "mremap":
            return args[4] if args[3] & MREMAP_FIXED else args[0]
        if name == "brk":
            if args[0] and not self.refuse_brk:
                self.brk = args[0]
            return self.brk
        return 0

    def _zero(self, addr: int, length: int) -> None:
        lo, hi = max(addr, LOW), min(addr + length, LOW + WINDOW)
        if lo < hi:
            self.mem.write(lo, bytes(hi - lo))

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]


@dataclass
class Sys5:
    """One booted kernel + MM + VFS and process 5 with a fake host."""

    kernel: Kernel
    lattice: Lattice
    mm: MmServer
    vfs: VfsServer
    mem: FlatMemory
    host: FakeHost

    async def call(self, nr: Sys, *args: int, host: Any = ...) -> int:
        ctx = SyscallContext(pid=PID, args=tuple(a & U64 for a in args) + (0,) * (6 - len(args)),
                             mem=self.mem, host=self.host if host is ... else host)
        # what the trap layer does: run each HostStep on the "host", feed the
        # answer back, wait for steps that come later
        send, recv = trio.open_memory_channel[Any](math.inf)
        with trio.fail_after(5):
            step: Any = self.kernel.start(nr, ctx, send.send_nowait)
            while True:
                if step is None:
                    step = await recv.receive()
                if isinstance(step, HostStep):
                    value = step.op and ctx.host.answer(step.op)
                    await trio.lowlevel.checkpoint()   # answered from the loop, later
                    step = step.call.resume_host(value)
                    continue
                return step

    async def ask(self, dst: int, body: p.Payload) -> Any:
        reply = (await self.lattice.sendrec(p.KERNEL_PID, dst, body)).body
        assert reply.error == 0, f"{body}: {errno.errorcode.get(reply.error)}"
        return reply

    async def vfs_err(self, body: p.Payload) -> int:
        return (await self.lattice.sendrec(p.KERNEL_PID, p.VFS_PID, body)).body.error

    async def create(self, path: bytes, data: bytes) -> None:
        fd = await self.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
        for i in range(0, len(data), p.DATA_MAX):
            await self.ask(p.VFS_PID, p.VfsWrite(caller=PID, fd=fd, data=data[i:i + p.DATA_MAX]))
        await self.ask(p.VFS_PID, p.VfsClose(caller=PID, fd=fd))

    async def open(self, path: bytes, flags: int = os.O_RDONLY) -> int:
        return (await self.ask(p.VFS_PID, p.VfsOpen(caller=PID, dirfd=-100, flags=flags,
                                                    mode=0o644, path=path))).result

    async def read_file(self, path: bytes) -> bytes:
        fd = await self.open(path)
        out = b""
        while chunk := (await self.ask(p.VFS_PID, p.VfsRead(caller=PID, fd=fd, count=4096))).data:
            out += chunk
        await self.ask(p.VFS_PID, p.VfsClose(caller=PID, fd=fd))
        return out

    def regions(self) -> list[tuple[int, int, str]]:
        return [(r.start, r.end, r.perms) for r in self.mm.acct.space(PID)]

    def region_at(self, addr: int) -> Any:
        return self.mm.acct.space(PID).find(addr)


@pytest.fixture
async def sys5(nursery: trio.Nursery, lattice: Lattice, console: Any) -> AsyncIterator[Sys5]:
    kernel = Kernel(lattice, console)
    kernel.nursery = nursery
    mm = MmServer(lattice, phys_size=64 << 20)
    vfs = VfsServer(lattice, console=console, mounts=[])
    for pid in (p.MM_PID, p.VFS_PID):
        lattice.connect_local(p.KERNEL_PID, pid)
        await nursery.start((mm if pid == p.MM_PID else vfs).serve)
    mem = FlatMemory(WINDOW, base=LOW)
    s = Sys5(kernel, lattice, mm, vfs, mem, FakeHost(mem))
    await s.ask(p.VFS_PID, p.VfsFork(parent=p.INIT_PID, child=PID))
    await s.ask(p.MM_PID, p.MmSpawn(pid=PID, host_pid=0))
    yield s
    vfs.stop()


# --- anonymous memory -----------------------------------------------------------------------


async def test_anonymous_mmap_is_one_injected_mmap_at_mms_address(sys5: Sys5) -> None:
    addr = await sys5.call(Sys.MMAP, 0, 3 * P, RW, ANON, -1, 0)
    assert addr == DEFAULT_MMAP_BASE - 3 * P
    assert sys5.host.calls == [("mmap", (addr, 3 * P, RW, ANON | MAP_FIXED, -1, 0))]
    assert sys5.regions() == [(addr, addr + 3 * P, "rw-p")]
    # MAP_FIXED_NOREPLACE becomes plain MAP_FIXED on the host (MM checked the range)
    hint = addr - 16 * P
    assert await sys5.call(Sys.MMAP, hint, P, PROT_READ, ANON | MAP_FIXED_NOREPLACE | MAP_POPULATE,
                           -1, 0) == hint
    assert sys5.host.calls[-1] == ("mmap", (hint, P, PROT_READ, ANON | MAP_FIXED | MAP_POPULATE,
                                            -1, 0))
    assert await sys5.call(Sys.MMAP, hint, P, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0) \
        == -errno.EEXIST
    assert await sys5.call(Sys.MMAP, 0, 0, RW, ANON, -1, 0) == -errno.EINVAL
    assert len(sys5.host.calls) == 2                     # refused calls reach no host


async def test_a_failed_host_mmap_is_rolled_back(sys5: Sys5) -> None:
    a = await sys5.call(Sys.MMAP, 0, 2 * P, RW, ANON, -1, 0)
    before = sys5.regions()
    sys5.host.fail["mmap"] = -errno.ENOMEM
    assert await sys5.call(Sys.MMAP, 0, 4 * P, RW, ANON, -1, 0) == -errno.ENOMEM
    assert sys5.regions() == before
    # MAP_FIXED over an existing mapping: the old one is back in the record
    sys5.host.fail["mmap"] = -errno.EPERM
    assert await sys5.call(Sys.MMAP, a, P, PROT_NONE, ANON | MAP_FIXED, -1, 0) == -errno.EPERM
    assert sys5.regions() == before
    # no host side at all (a kernel-side caller): ENOSYS, and nothing recorded
    assert await sys5.call(Sys.MMAP, 0, P, RW, ANON, -1, 0, host=None) == -errno.ENOSYS
    assert sys5.regions() == before


async def test_munmap_mprotect_follow_mm_and_roll_back(sys5: Sys5) -> None:
    a = await sys5.call(Sys.MMAP, 0, 4 * P, RW, ANON, -1, 0)
    assert await sys5.call(Sys.MPROTECT, a + P, P, PROT_READ) == 0
    assert await sys5.call(Sys.MUNMAP, a + 2 * P, P) == 0
    assert sys5.host.calls[1:] == [("mprotect", (a + P, P, PROT_READ)),
                                   ("munmap", (a + 2 * P, P))]
    expect = [(a, a + P, "rw-p"), (a + P, a + 2 * P, "r--p"), (a + 3 * P, a + 4 * P, "rw-p")]
    assert sys5.regions() == expect
    sys5.host.fail["mprotect"] = -errno.EACCES
    assert await sys5.call(Sys.MPROTECT, a, P, PROT_NONE) == -errno.EACCES
    sys5.host.fail["munmap"] = -errno.EINVAL
    assert await sys5.call(Sys.MUNMAP, a, 4 * P) == -errno.EINVAL
    assert sys5.regions() == expect
    calls = len(sys5.host.calls)
    assert await sys5.call(Sys.MPROTECT, a + 2 * P, P, PROT_READ) == -errno.ENOMEM  # MM says
    assert len(sys5.host.calls) == calls


async def test_mremap_moves_where_mm_says(sys5: Sys5) -> None:
    a = await sys5.call(Sys.MMAP, 0, 2 * P, RW, ANON, -1, 0)
    await sys5.call(Sys.MMAP, a - P, P, PROT_READ, ANON | MAP_FIXED, -1, 0)
    assert await sys5.call(Sys.MREMAP, a, 2 * P, P, 0, 0) == a          # shrink in place
    assert sys5.host.calls[-1] == ("mremap", (a, 2 * P, P, 0, 0))
    # growing is blocked above: MM picks a new place
    await sys5.call(Sys.MMAP, a + 2 * P, P, PROT_READ, ANON | MAP_FIXED, -1, 0)
    new = await sys5.call(Sys.MREMAP, a, P, 4 * P, MREMAP_MAYMOVE, 0)
    assert new not in (a, -errno.ENOMEM) and new > 0
    assert sys5.host.calls[-1] == ("mremap", (a, P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, new))
    assert sys5.region_at(a) is None and sys5.region_at(new).end == new + 4 * P
    assert await sys5.call(Sys.MREMAP, new, 4 * P, 8 * P, 0, 0) == -errno.ENOMEM
    before = sys5.regions()
    sys5.host.fail["mremap"] = -errno.ENOMEM
    assert await sys5.call(Sys.MREMAP, new, 4 * P, 8 * P, MREMAP_MAYMOVE, 0) == -errno.ENOMEM
    assert sys5.regions() == before


async def test_brk_learns_the_host_break_then_follows_mm(sys5: Sys5) -> None:
    assert await sys5.call(Sys.BRK, 0) == HOST_BRK
    assert sys5.host.calls == [("brk", (0,))]               # learned once
    assert await sys5.call(Sys.BRK, 0) == HOST_BRK
    assert len(sys5.host.calls) == 1                        # then MM answers queries alone
    assert await sys5.call(Sys.BRK, HOST_BRK + 4096) == HOST_BRK + 4096
    assert sys5.host.calls[-1] == ("brk", (HOST_BRK + 4096,))
    assert sys5.region_at(HOST_BRK).name == "[heap]"
    # refused by MM (below the start): the old break, no host call
    calls = len(sys5.host.calls)
    assert await sys5.call(Sys.BRK, HOST_BRK - P) == HOST_BRK + 4096
    assert len(sys5.host.calls) == calls
    # refused by the host: the old break, and MM forgets the growth
    sys5.host.refuse_brk = True
    assert await sys5.call(Sys.BRK, HOST_BRK + 8 * P) == HOST_BRK + 4096
    assert sys5.region_at(HOST_BRK).end == HOST_BRK + P
    sys5.host.refuse_brk = False
    assert await sys5.call(Sys.BRK, HOST_BRK) == HOST_BRK     # shrink
    assert sys5.region_at(HOST_BRK) is None


async def test_brk_on_first_use_with_a_growth_request(sys5: Sys5) -> None:
    assert await sys5.call(Sys.BRK, HOST_BRK + 2 * P) == HOST_BRK + 2 * P
    assert sys5.host.calls == [("brk", (0,)), ("brk", (HOST_BRK + 2 * P,))]


async def test_madvise_dontneed(sys5: Sys5) -> None:
    a = await sys5.call(Sys.MMAP, 0, 4 * P, RW, ANON | MAP_POPULATE, -1, 0)
    used = sys5.mm.acct.frames.used_pages
    assert await sys5.call(Sys.MADVISE, a, 2 * P, 4) == 0
    assert sys5.host.calls[-1] == ("madvise", (a, 2 * P, 4))
    assert sys5.mm.acct.frames.used_pages == used - 2
    assert await sys5.call(Sys.MADVISE, a, P, 3) == 0                   # WILLNEED: as it is
    assert sys5.host.calls[-1] == ("madvise", (a, P, 3))


# --- file mappings through the VFS --------------------------------------------------------

DATA = bytes(range(256)) * 40 + b"tail"          # 10244 bytes: 2 pages and a bit


async def test_private_file_map_is_anon_map_fill_and_mprotect(sys5: Sys5) -> None:
    await sys5.create(b"/tmp/lib.so", DATA)
    fd = await sys5.open(b"/tmp/lib.so")
    prot = PROT_READ | PROT_EXEC
    addr = await sys5.call(Sys.MMAP, 0, 4 * P, prot, MAP_PRIVATE | MAP_DENYWRITE, fd, 0)
    assert addr == DEFAULT_MMAP_BASE - 4 * P
    assert sys5.host.calls == [
        ("mmap", (addr, 4 * P, prot | PROT_WRITE, ANON | MAP_FIXED, -1, 0)),
        ("mprotect", (addr, 4 * P, prot))]
    assert sys5.mem.read(addr, len(DATA)) == DATA
    assert sys5.mem.read(addr + len(DATA), 4 * P - len(DATA)) == bytes(4 * P - len(DATA))
    r = sys5.region_at(addr)
    assert r.perms == "r-xp" and r.backing.offset == 0
    assert sys5.mm.acct.usage(PID).used == 3                    # the pages the file fills
    # the file position was not moved by the fill
    assert (await sys5.ask(p.VFS_PID, p.VfsRead(caller=PID, fd=fd, count=4))).data == DATA[:4]


async def test_ld_so_pattern_reserve_then_fixed_segments(sys5: Sys5) -> None:
    """ld.so maps the whole image from the first segment, then MAP_FIXED pieces
    over it, then anonymous bss."""
    await sys5.create(b"/tmp/libc.so", DATA)
    fd = await sys5.open(b"/tmp/libc.so")
    base = await sys5.call(Sys.MMAP, 0, 5 * P, PROT_READ, MAP_PRIVATE | MAP_DENYWRITE, fd, 0)
    seg = await sys5.call(Sys.MMAP, base + P, P, PROT_READ | PROT_EXEC,
                          MAP_PRIVATE | MAP_FIXED | MAP_DENYWRITE, fd, 2 * P)
    assert seg == base + P
    bss = await sys5.call(Sys.MMAP, base + 3 * P, 2 * P, RW, ANON | MAP_FIXED, -1, 0)
    assert bss == base + 3 * P
    assert await sys5.call(Sys.CLOSE, fd) == 0
    assert sys5.mem.read(base, P) == DATA[:P]
    assert sys5.mem.read(base + P, len(DATA) - 2 * P) == DATA[2 * P:]
    assert sys5.mem.read(base + 3 * P, 2 * P) == bytes(2 * P)
    assert [perm for _, _, perm in sys5.regions()] == ["r--p", "r-xp", "r--p", "rw-p"]
    assert [n for n in sys5.host.names()] == ["mmap", "mprotect", "mmap", "mprotect", "mmap"]


async def test_file_map_errors_inject_nothing(sys5: Sys5) -> None:
    await sys5.create(b"/tmp/f", DATA)
    ro = await sys5.open(b"/tmp/f")
    wo = await sys5.open(b"/tmp/f", os.O_WRONLY)
    d = await sys5.open(b"/tmp", os.O_RDONLY | os.O_DIRECTORY)
    fds = (await sys5.ask(p.VFS_PID, p.VfsPipe(caller=PID, flags=0)))
    assert await sys5.call(Sys.MMAP, 0, P, PROT_READ, MAP_PRIVATE, 77, 0) == -errno.EBADF
    assert await sys5.call(Sys.MMAP, 0, P, RW, MAP_SHARED, ro, 0) == -errno.EACCES
    assert await sys5.call(Sys.MMAP, 0, P, PROT_READ, MAP_PRIVATE, wo, 0) == -errno.EACCES
    assert await sys5.call(Sys.MMAP, 0, P, PROT_READ, MAP_PRIVATE, d, 0) == -errno.ENODEV
    assert await sys5.call(Sys.MMAP, 0, P, PROT_READ, MAP_PRIVATE, fds.read_fd, 0) \
        == -errno.ENODEV
    assert await sys5.call(Sys.MMAP, 0, P, PROT_READ, MAP_PRIVATE, ro, 100) == -errno.EINVAL
    assert await sys5.call(Sys.MMAP, 0, 0, PROT_READ, MAP_PRIVATE, ro, 0) == -errno.EINVAL
    assert sys5.host.calls == [] and sys5.regions() == []


async def test_dev_zero_maps_as_anonymous_memory(sys5: Sys5) -> None:
    fd = await sys5.open(b"/dev/zero", os.O_RDWR)
    addr = await sys5.call(Sys.MMAP, 0, 2 * P, RW, MAP_PRIVATE, fd, 0)
    assert sys5.host.calls == [("mmap", (addr, 2 * P, RW, ANON | MAP_FIXED, -1, 0))]


async def test_a_failed_fill_unmaps_and_rolls_back(sys5: Sys5) -> None:
    await sys5.create(b"/tmp/f", DATA)
    fd = await sys5.open(b"/tmp/f")
    # the host maps elsewhere than FlatMemory covers: writing the fill faults
    far = DEFAULT_MMAP_BASE - 2 * WINDOW
    assert await sys5.call(Sys.MMAP, far, P, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) \
        == -errno.EFAULT
    assert sys5.host.names() == ["mmap", "munmap"]
    assert sys5.regions() == []
    sys5.host.fail["mmap"] = -errno.ENOMEM
    assert await sys5.call(Sys.MMAP, 0, P, PROT_READ, MAP_PRIVATE, fd, 0) == -errno.ENOMEM
    assert sys5.regions() == []


async def test_shared_file_map_is_written_back_on_msync_and_munmap(sys5: Sys5) -> None:
    await sys5.create(b"/tmp/shared", DATA)
    fd = await sys5.open(b"/tmp/shared", os.O_RDWR)
    addr = await sys5.call(Sys.MMAP, 0, 4 * P, RW, MAP_SHARED, fd, 0)
    assert sys5.host.calls == [("mmap", (addr, 4 * P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED,
                                         -1, 0))]
    assert sys5.mem.read(addr, len(DATA)) == DATA
    (hidden,) = sys5.vfs.procs[PID].hidden                 # the write-back dup: outside
    assert hidden >= p.HIDDEN_FD_BASE                      # the fd table
    assert await sys5.call(Sys.CLOSE, fd) == 0             # programs close after mmap
    sys5.mem.write(addr + 10, b"CHANGED")
    sys5.mem.write(addr + 3 * P, b"past the end")          # never extends the file
    assert await sys5.read_file(b"/tmp/shared") == DATA    # not yet
    assert await sys5.call(Sys.MSYNC, addr, 4 * P, 4) == 0
    want = DATA[:10] + b"CHANGED" + DATA[17:]
    assert await sys5.read_file(b"/tmp/shared") == want
    assert "msync" not in sys5.host.names()                # nothing for the host to do
    # munmap writes back first, then unmaps, then closes the hidden fd
    sys5.mem.write(addr + P, b"again")
    assert await sys5.call(Sys.MUNMAP, addr, 4 * P) == 0
    assert sys5.host.calls[-1] == ("munmap", (addr, 4 * P))
    want = want[:P] + b"again" + want[P + 5:]
    assert await sys5.read_file(b"/tmp/shared") == want
    assert await sys5.vfs_err(p.VfsFcntl(caller=PID, fd=hidden, cmd=1, arg=0)) == errno.EBADF
    assert await sys5.call(Sys.MSYNC, addr, P, 4) == -errno.ENOMEM


async def test_shared_map_replaced_by_map_fixed_is_written_back(sys5: Sys5) -> None:
    await sys5.create(b"/tmp/s2", DATA)
    fd = await sys5.open(b"/tmp/s2", os.O_RDWR)
    addr = await sys5.call(Sys.MMAP, 0, 2 * P, RW, MAP_SHARED, fd, 0)
    sys5.mem.write(addr + P, b"XY")
    assert await sys5.call(Sys.MMAP, addr, 2 * P, RW, ANON | MAP_FIXED, -1, 0) == addr
    assert (await sys5.read_file(b"/tmp/s2"))[P:P + 2] == b"XY"


async def test_madvise_dontneed_spares_private_file_pages(sys5: Sys5) -> None:
    await sys5.create(b"/tmp/f", DATA)
    fd = await sys5.open(b"/tmp/f")
    f = await sys5.call(Sys.MMAP, 0, 2 * P, PROT_READ, MAP_PRIVATE, fd, 0)
    a = await sys5.call(Sys.MMAP, f - 2 * P, 2 * P, RW, ANON | MAP_FIXED, -1, 0)
    assert await sys5.call(Sys.MADVISE, a, 4 * P, 4) == 0
    assert sys5.host.calls[-1] == ("madvise", (a, 2 * P, 4))
    assert sys5.host.names().count("madvise") == 1
    assert sys5.mem.read(f, P) == DATA[:P]
