"""The MM server through its message API: layout import, mmap placement and
validation, munmap/mprotect/mremap/brk, fork/exit accounting, the maps query,
pool exhaustion, undo, file maps, and bad input."""
from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from xinim_host.lib import protocol as p
from xinim_host.lib.ipc import Lattice, Pending
from xinim_host.lib.vm_abi import (
    DEFAULT_MMAP_BASE,
    MAP_ANONYMOUS,
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
    TASK_SIZE,
)
from xinim_host.mm.regions import MapsEntry, Region, parse_maps
from xinim_host.mm.server import MmServer

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
PID = 5
FREE_LOW = 0x2_0000_0000          # far from anything a Python process maps
HEAP = 0x5555_5556_0000


class Mm:
    """Shorthands that send real messages through ``lattice.sendrec(src, 4, ...)``."""

    def __init__(self, lattice: Lattice, srv: MmServer) -> None:
        self.lattice, self.srv = lattice, srv

    async def call(self, body: p.Payload, src: int = p.KERNEL_PID) -> Any:
        with trio.fail_after(5):
            return (await self.lattice.sendrec(src, p.MM_PID, body)).body

    async def ok(self, body: p.Payload, src: int = p.KERNEL_PID) -> Any:
        reply = await self.call(body, src)
        assert reply.error == 0, f"{body} failed: {errno.errorcode.get(reply.error)}"
        return reply

    async def err(self, body: p.Payload, src: int = p.KERNEL_PID) -> str:
        reply = await self.call(body, src)
        return errno.errorcode.get(reply.error, str(reply.error)) if reply.error else "OK"

    async def spawn(self, pid: int = PID, host_pid: int = 0) -> None:
        await self.ok(p.MmSpawn(pid=pid, host_pid=host_pid))

    def mmap_msg(self, length: int, prot: int = RW, flags: int = ANON, addr: int = 0,
                 pid: int = PID, offset: int = 0) -> p.MmMmap:
        return p.MmMmap(caller=pid, addr=addr, length=length, prot=prot, flags=flags, fd=-1,
                        offset=offset)

    async def mmap(self, length: int, prot: int = RW, flags: int = ANON, addr: int = 0,
                   pid: int = PID) -> int:
        return (await self.ok(self.mmap_msg(length, prot, flags, addr, pid))).result

    async def munmap(self, addr: int, length: int, pid: int = PID) -> Any:
        return await self.ok(p.MmMunmap(caller=pid, addr=addr, length=length))

    async def maps_reply(self, pid: int = PID, src: int = p.KERNEL_PID) -> tuple[str, Any]:
        text, offset = b"", 0
        while True:
            reply = await self.ok(p.MmMaps(pid=pid, offset=offset), src)
            text += reply.data
            offset += len(reply.data)
            if offset >= reply.result:
                return text.decode(), reply

    async def maps(self, pid: int = PID) -> list[MapsEntry]:
        return parse_maps((await self.maps_reply(pid))[0])

    async def region_at(self, addr: int, pid: int = PID) -> MapsEntry | None:
        return next((e for e in await self.maps(pid) if e.start <= addr < e.end), None)

    async def usage(self, pid: int = PID) -> tuple[int, int, int]:
        r = (await self.maps_reply(pid))[1]
        return r.used, r.shared, r.private


@pytest.fixture
async def make_mm(nursery: trio.Nursery, lattice: Lattice) -> Callable[..., Awaitable[Mm]]:
    async def make(phys_size: int = 256 << 20) -> Mm:
        lattice.register(p.KERNEL_PID)
        srv = MmServer(lattice, phys_size=phys_size)
        lattice.connect_local(p.KERNEL_PID, p.MM_PID)
        await nursery.start(srv.serve)
        return Mm(lattice, srv)
    return make


@pytest.fixture
async def mm(make_mm: Callable[..., Awaitable[Mm]]) -> Mm:
    return await make_mm()


def overlaps(a: MapsEntry, start: int, end: int) -> bool:
    return a.start < end and start < a.end


# --- spawn / exec layout -------------------------------------------------------------------

def host_entries() -> list[MapsEntry]:
    with open("/proc/self/maps") as f:
        return [e for e in parse_maps(f.read()) if e.end <= TASK_SIZE]


async def test_spawn_imports_the_host_layout(mm: Mm) -> None:
    before = host_entries()
    await mm.spawn(host_pid=os.getpid())
    record = await mm.maps()
    assert record and all(e.end <= TASK_SIZE for e in record)
    # every host mapping that existed before and after the import is in the record
    after = {(e.start, e.end, e.perms) for e in host_entries()}
    for e in before:
        if (e.start, e.end, e.perms) not in after:
            continue                          # the test process changed it meanwhile
        holder = [r for r in record if r.start <= e.start and e.end <= r.end]
        assert holder and holder[0].perms == e.perms, e
    names = {e.name for e in record}
    assert "[stack]" in names and "[vdso]" in names
    # a file mapping keeps its path, offset and inode
    libs = [e for e in before if e.inode and e.name.startswith("/")]
    assert any(r.name == libs[0].name and r.inode == libs[0].inode for r in record)


async def test_mmap_is_top_down_first_fit_clear_of_imported_regions(mm: Mm) -> None:
    await mm.spawn(host_pid=os.getpid())
    imported = await mm.maps()
    stack = next(e for e in imported if e.name == "[stack]")
    addrs = [await mm.mmap(n * P) for n in (1, 2, 3)]
    for addr, n in zip(addrs, (1, 2, 3)):
        assert addr % P == 0 and addr + n * P <= stack.end - (128 << 20)
        assert not any(overlaps(e, addr, addr + n * P) for e in imported)
    # top-down: each one right below the previous
    assert addrs[1] == addrs[0] - 2 * P and addrs[2] == addrs[1] - 3 * P
    # first fit: a freed hole up top is reused by the next map that fits
    await mm.munmap(addrs[0], P)
    assert await mm.mmap(P) == addrs[0]


async def test_empty_layout_starts_below_the_default_base(mm: Mm) -> None:
    await mm.spawn()
    assert await mm.mmap(P) == DEFAULT_MMAP_BASE - P


async def test_hints_fixed_and_noreplace(mm: Mm) -> None:
    await mm.spawn(host_pid=os.getpid())
    assert await mm.mmap(2 * P, addr=FREE_LOW) == FREE_LOW                 # hint honoured
    assert await mm.mmap(P, addr=FREE_LOW) != FREE_LOW                     # busy: elsewhere
    assert await mm.mmap(P, addr=FREE_LOW + 2 * P + 123) == FREE_LOW + 2 * P   # rounded down
    # MAP_FIXED replaces part of the first mapping
    assert await mm.mmap(P, PROT_READ, ANON | MAP_FIXED, FREE_LOW + P) == FREE_LOW + P
    assert (await mm.region_at(FREE_LOW)).perms == "rw-p"
    assert (await mm.region_at(FREE_LOW + P)).perms == "r--p"
    assert await mm.err(mm.mmap_msg(P, flags=ANON | MAP_FIXED_NOREPLACE, addr=FREE_LOW)) == "EEXIST"
    assert await mm.err(mm.mmap_msg(P, flags=ANON | MAP_FIXED, addr=FREE_LOW + 1)) == "EINVAL"
    assert await mm.err(mm.mmap_msg(0)) == "EINVAL"
    assert await mm.err(mm.mmap_msg(P, offset=100)) == "EINVAL"
    assert await mm.err(mm.mmap_msg(P, flags=MAP_PRIVATE)) == "EBADF"      # a file without facts
    assert await mm.err(mm.mmap_msg(1 << 62)) == "ENOMEM"


async def test_munmap_splits_and_mprotect_changes_the_middle(mm: Mm) -> None:
    await mm.spawn()
    a = await mm.mmap(4 * P)
    await mm.ok(p.MmMprotect(caller=PID, addr=a + P, length=2 * P, prot=PROT_READ))
    mine = [e for e in await mm.maps() if a <= e.start < a + 4 * P]
    assert [(e.start - a, e.end - a, e.perms) for e in mine] == [
        (0, P, "rw-p"), (P, 3 * P, "r--p"), (3 * P, 4 * P, "rw-p")]
    await mm.munmap(a + P, P)
    mine = [e for e in await mm.maps() if a <= e.start < a + 4 * P]
    assert [(e.start - a, e.end - a) for e in mine] == [(0, P), (2 * P, 3 * P), (3 * P, 4 * P)]
    assert await mm.err(p.MmMprotect(caller=PID, addr=a, length=4 * P, prot=PROT_READ)) == "ENOMEM"
    assert await mm.err(p.MmMunmap(caller=PID, addr=a + 1, length=P)) == "EINVAL"
    await mm.munmap(a, 4 * P)
    assert not [e for e in await mm.maps() if a <= e.start < a + 4 * P]


async def test_mremap_in_place_moving_and_fixed(mm: Mm) -> None:
    await mm.spawn()
    a = await mm.mmap(2 * P, addr=FREE_LOW)
    grown = await mm.ok(p.MmMremap(caller=PID, old_addr=a, old_len=2 * P, new_len=4 * P, flags=0))
    assert grown.result == a and grown.token
    await mm.mmap(P, addr=a + 4 * P)                                    # block growth
    assert await mm.err(p.MmMremap(caller=PID, old_addr=a, old_len=4 * P, new_len=8 * P,
                                   flags=0)) == "ENOMEM"
    moved = (await mm.ok(p.MmMremap(caller=PID, old_addr=a, old_len=4 * P, new_len=8 * P,
                                    flags=MREMAP_MAYMOVE))).result
    assert moved != a and await mm.region_at(a) is None
    assert (await mm.region_at(moved)).end == moved + 8 * P
    target = FREE_LOW + 64 * P
    fixed = await mm.ok(p.MmMremap(caller=PID, old_addr=moved, old_len=8 * P, new_len=2 * P,
                                   flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=target))
    assert fixed.result == target and await mm.region_at(moved) is None
    assert await mm.err(p.MmMremap(caller=PID, old_addr=target, old_len=P, new_len=P,
                                   flags=MREMAP_FIXED, new_addr=a)) == "EINVAL"
    assert await mm.err(p.MmMremap(caller=PID, old_addr=target, old_len=P, new_len=P,
                                   flags=MREMAP_MAYMOVE | 4)) == "EINVAL"    # DONTUNMAP


async def test_brk_query_grow_shrink_refusal(mm: Mm) -> None:
    await mm.spawn()
    first = await mm.ok(p.MmBrk(caller=PID, addr=0))
    assert first.status & p.MM_ST_BRK_UNKNOWN                  # learn it from the host first
    assert (await mm.ok(p.MmSetBrk(caller=PID, brk=HEAP))).result == HEAP
    q = await mm.ok(p.MmBrk(caller=PID, addr=0))
    assert (q.result, q.old, q.token, q.status) == (HEAP, HEAP, 0, 0)
    # a second thread's late lesson does not override what MM knows
    assert (await mm.ok(p.MmSetBrk(caller=PID, brk=HEAP + 9 * P))).result == HEAP
    g = await mm.ok(p.MmBrk(caller=PID, addr=HEAP + 4096))
    assert (g.result, g.old) == (HEAP + 4096, HEAP) and g.token
    heap = await mm.region_at(HEAP)
    assert heap.name == "[heap]" and (heap.start, heap.end) == (HEAP, HEAP + P)
    g = await mm.ok(p.MmBrk(caller=PID, addr=HEAP + 10 * P + 5))
    assert g.result == HEAP + 10 * P + 5
    s = await mm.ok(p.MmBrk(caller=PID, addr=HEAP + 2 * P))
    assert (s.result, s.old) == (HEAP + 2 * P, HEAP + 10 * P + 5)
    assert (await mm.region_at(HEAP)).end == HEAP + 2 * P
    # refused: below the start, into a mapping, beyond the pool -> the old break
    await mm.mmap(P, addr=HEAP + 8 * P, flags=ANON | MAP_FIXED)
    for want in (HEAP - P, HEAP + 20 * P, HEAP + (1 << 40)):
        r = await mm.ok(p.MmBrk(caller=PID, addr=want))
        assert (r.result, r.old, r.token) == (HEAP + 2 * P, HEAP + 2 * P, 0)


async def test_set_brk_keeps_an_imported_heap(mm: Mm) -> None:
    await mm.spawn(host_pid=os.getpid())
    heap = next((e for e in await mm.maps() if e.name == "[heap]"), None)
    if heap is None:
        pytest.skip("this Python has no [heap]")
    await mm.ok(p.MmSetBrk(caller=PID, brk=heap.end - 16))
    r = await mm.ok(p.MmBrk(caller=PID, addr=heap.end + P))
    assert r.result == heap.end + P
    assert (await mm.region_at(heap.start)).end == heap.end + P       # merged with it
    shrink = await mm.ok(p.MmBrk(caller=PID, addr=heap.start + 1))    # above the start: fine
    assert shrink.result == heap.start + 1


async def test_fork_shares_frames_copy_on_write(mm: Mm) -> None:
    await mm.spawn()
    free = mm.srv.acct.frames.free_pages
    a = await mm.mmap(8 * P, flags=ANON | MAP_POPULATE)
    assert await mm.usage() == (8, 0, 8)
    await mm.ok(p.MmFork(parent=PID, child=6))
    assert await mm.usage() == (8, 8, 0) and await mm.usage(6) == (8, 8, 0)
    assert mm.srv.acct.frames.free_pages == free - 8               # nothing copied yet
    assert [e[:3] for e in await mm.maps(6)] == [e[:3] for e in await mm.maps()]
    # the child writes 3 pages (a write-path syscall): private copies
    assert (await mm.ok(p.MmCharge(caller=6, addr=a, length=3 * P))).result == 3
    assert await mm.usage(6) == (8, 5, 3) and await mm.usage() == (8, 5, 3)
    assert mm.srv.acct.frames.free_pages == free - 11
    # the child's brk knowledge and layout are its own from now on
    await mm.munmap(a, 8 * P, pid=6)
    assert await mm.usage() == (8, 0, 8)
    assert mm.srv.acct.frames.free_pages == free - 8
    # a fork from a parent MM never saw (init) gives the child an empty record
    await mm.ok(p.MmFork(parent=1, child=7))
    assert await mm.maps(7) == []



async def test_vfork_child_shares_the_record(mm: Mm) -> None:
    """A CLONE_VM child (vfork) shares its parent's record: its map and unmap
    change the parent's memory, frames are charged once, and its exec or exit
    drops only its own reference."""
    await mm.spawn()
    free = mm.srv.acct.frames.free_pages
    a = await mm.mmap(8 * P, flags=ANON | MAP_POPULATE)
    for child in (6, 7):
        await mm.ok(p.MmFork(parent=PID, child=child, flags=p.MM_FORK_SHARE_VM))
        assert mm.srv.acct.frames.free_pages == free - 8           # nothing shared twice
        assert await mm.usage(child) == (8, 0, 8) == await mm.usage()
        # the child maps and unmaps before its exec: the parent sees both
        b = await mm.mmap(2 * P, flags=ANON | MAP_POPULATE, pid=child)
        await mm.munmap(a, P, pid=child)
        assert await mm.region_at(b) is not None and await mm.region_at(a) is None
        assert mm.srv.acct.frames.free_pages == free - 9
        # naming the child (a non-fresh layout) keeps the one record
        await mm.ok(p.MmExecLayout(pid=child, host_pid=os.getpid()))
        assert await mm.region_at(b, child) is not None
        if child == 6:     # exit (or kill -9) before exec
            await mm.ok(p.MmExit(pid=child))
            assert await mm.err(p.MmMaps(pid=child)) == "ESRCH"
        else:              # exec: a fresh layout of its own
            await mm.ok(p.MmExecLayout(pid=child, host_pid=os.getpid(), fresh=1))
            assert await mm.region_at(b, child) is None
            await mm.mmap(4 * P, flags=ANON | MAP_POPULATE, pid=child)     # its own now
            assert mm.srv.acct.frames.free_pages == free - 13
            await mm.ok(p.MmExit(pid=child))
        # the parent's record is intact, its frames still charged
        assert await mm.region_at(b) is not None and await mm.region_at(a) is None
        assert await mm.usage() == (9, 0, 9)
        assert mm.srv.acct.frames.free_pages == free - 9
        await mm.munmap(b, 2 * P)
        a = await mm.mmap(P, flags=ANON | MAP_POPULATE, addr=a)
    # the parent's exit with a sharer alive leaves the record to the sharer
    await mm.ok(p.MmFork(parent=PID, child=8, flags=p.MM_FORK_SHARE_VM))
    await mm.ok(p.MmExit(pid=PID))
    assert await mm.usage(8) == (8, 0, 8)
    await mm.ok(p.MmExit(pid=8))
    assert mm.srv.acct.frames.free_pages == free
    mm.srv.acct.frames.check_invariants()

async def test_exit_releases_everything(mm: Mm) -> None:
    await mm.spawn()
    free = mm.srv.acct.frames.free_pages
    await mm.mmap(16 * P, flags=ANON | MAP_POPULATE)
    await mm.ok(p.MmFork(parent=PID, child=6))
    await mm.ok(p.MmExit(pid=PID))
    assert mm.srv.acct.frames.free_pages == free - 16             # the child still holds them
    assert await mm.err(p.MmMaps(pid=PID)) == "ESRCH"
    assert await mm.err(mm.mmap_msg(P)) == "ESRCH"
    await mm.ok(p.MmExit(pid=6))
    assert mm.srv.acct.frames.free_pages == free
    await mm.ok(p.MmExit(pid=6))                                   # twice: a no-op
    mm.srv.acct.frames.check_invariants()


async def test_exec_layout_resets_the_record(mm: Mm) -> None:
    await mm.spawn()
    a = await mm.mmap(4 * P, flags=ANON | MAP_POPULATE)
    await mm.ok(p.MmSetBrk(caller=PID, brk=HEAP))
    await mm.ok(p.MmExecLayout(pid=PID, host_pid=os.getpid()))
    assert await mm.region_at(a) is None
    assert await mm.usage() == (0, 0, 0)
    assert any(e.name == "[stack]" for e in await mm.maps())
    assert (await mm.ok(p.MmBrk(caller=PID, addr=0))).status & p.MM_ST_BRK_UNKNOWN
    assert await mm.err(p.MmExecLayout(pid=PID, host_pid=2**31 - 1)) == "ESRCH"
    assert any(e.name == "[stack]" for e in await mm.maps())       # a failure keeps the old


async def test_maps_query_pages_and_counts(mm: Mm) -> None:
    await mm.spawn()
    for i in range(120):                                           # ~6 KiB of text
        await mm.mmap(P, PROT_READ if i % 2 else RW, addr=FREE_LOW + 2 * i * P)
    await mm.mmap(4 * P, flags=ANON | MAP_POPULATE)
    text, reply = await mm.maps_reply()
    assert len(text) == reply.result > p.DATA_MAX
    assert text == mm.srv.acct.space(PID).format_maps()
    assert (reply.used, reply.shared, reply.private, reply.mapped_pages) == (4, 0, 4, 124)
    line = text.splitlines()[0]
    assert line.startswith(f"{FREE_LOW:08x}-{FREE_LOW + P:08x} rw-p 00000000 00:00 0")


async def test_pool_exhaustion_is_enomem(make_mm: Callable[..., Awaitable[Mm]]) -> None:
    mm = await make_mm(phys_size=64 * P)
    await mm.spawn()
    assert await mm.err(mm.mmap_msg(65 * P, flags=ANON | MAP_POPULATE)) == "ENOMEM"
    assert await mm.err(mm.mmap_msg(65 * P)) == "ENOMEM"           # overcommit heuristic
    a = await mm.mmap(60 * P, flags=ANON | MAP_POPULATE)
    assert await mm.err(mm.mmap_msg(8 * P, flags=ANON | MAP_POPULATE)) == "ENOMEM"
    assert await mm.err(p.MmCharge(caller=PID, addr=await mm.mmap(8 * P), length=8 * P)) \
        == "ENOMEM"
    assert await mm.mmap(8 * P, PROT_READ) > 0                      # uncharged: fine
    await mm.munmap(a, 60 * P)
    assert await mm.mmap(8 * P, flags=ANON | MAP_POPULATE) > 0
    mm.srv.acct.frames.check_invariants()


async def test_munmap_sure_and_split(mm: Mm) -> None:
    """MM_ST_SURE (the kernel need not wait for the host's munmap) unless a
    shared file piece is written back or a special mapping goes; MM_ST_SPLIT
    when the range lies strictly inside one region (a split in two: Linux's
    only max_map_count failure of munmap; the kernel counts the host's VMAs
    then), not for a cut at a region's edge, whole regions or a hole."""
    await mm.spawn()
    base = await mm.mmap(4 * P, addr=FREE_LOW)
    split = await mm.munmap(base + P, P)                   # the middle: a split
    assert split.status & p.MM_ST_SPLIT and split.status & p.MM_ST_SURE and split.token
    assert (await mm.munmap(base, P)).status & p.MM_ST_SURE          # [base, +P) whole
    tail = await mm.munmap(base + 2 * P, 4 * P)            # the rest, and a hole past it
    assert tail.status & p.MM_ST_SURE and tail.token
    assert await mm.region_at(base) is None and await mm.region_at(base + 3 * P) is None
    assert (await mm.munmap(base, P)).status & p.MM_ST_SURE          # nothing there
    other = await mm.mmap(4 * P, addr=FREE_LOW)
    head = await mm.munmap(other, P)                       # the head: an edge cut
    assert head.status & p.MM_ST_SURE and head.token
    assert (await mm.region_at(other + P)) is not None
    end = await mm.munmap(other + 3 * P, 2 * P)            # the end and a hole past it
    assert end.status & p.MM_ST_SURE
    assert (await mm.region_at(other + 2 * P)) is not None
    across = await mm.mmap(P, PROT_READ, ANON | MAP_FIXED, other + 3 * P)
    assert across == other + 3 * P                         # two regions now: rw, r
    cut = await mm.munmap(other + 2 * P, 2 * P)            # inside both, an edge of each
    assert cut.status & p.MM_ST_SURE
    assert await mm.region_at(other + P) is not None
    await mm.ok(p.MmUndo(caller=PID, token=cut.token))     # a sure one can still be undone
    assert await mm.region_at(other + 3 * P) is not None
    for reply in (head, end, cut):
        assert not reply.status & p.MM_ST_SPLIT
    many = await mm.mmap(3 * P, addr=FREE_LOW + 64 * P)
    assert (await mm.munmap(many + P, P)).status & p.MM_ST_SPLIT       # interior again
    shared = await mm.mmap(2 * P, flags=MAP_SHARED | MAP_ANONYMOUS, addr=FREE_LOW + 96 * P)
    ends = await mm.munmap(shared + P, P)                  # shared memory, no file: sure
    assert ends.status & p.MM_ST_SURE and not ends.data and not ends.fds


async def test_mremap_sure_only_when_private_anonymous_memory_grows(mm: Mm) -> None:
    """MM_ST_SURE on mremap (the kernel then checks the host's VMA itself): a
    private anonymous region grown in place or moved by MM, or shrunk inside it
    (MM_ST_SPLIT when the cut tail ends inside the region); never a shared map,
    a shrink past the region or an MREMAP_FIXED move."""
    await mm.spawn()

    async def remap(old: int, old_len: int, new_len: int, flags: int = MREMAP_MAYMOVE,
                    new_addr: int = 0) -> Any:
        return await mm.ok(p.MmMremap(caller=PID, old_addr=old, old_len=old_len,
                                      new_len=new_len, flags=flags, new_addr=new_addr))
    a = await mm.mmap(2 * P, addr=FREE_LOW)
    grown = await remap(a, 2 * P, 4 * P, 0)                    # in place
    assert grown.result == a and grown.status & p.MM_ST_SURE and grown.token
    await mm.mmap(P, PROT_READ, ANON | MAP_FIXED, a + 4 * P)   # a wall after it
    moved = await remap(a, 4 * P, 8 * P)
    assert moved.result != a and moved.status & p.MM_ST_SURE
    # a shrink is the munmap of its tail: sure, split when the tail ends inside
    # the region (the kernel counts the host's VMAs then), not at its end
    shrunk = await remap(moved.result, 8 * P, 4 * P, 0)
    assert shrunk.result == moved.result and shrunk.token
    assert shrunk.status & p.MM_ST_SURE and not shrunk.status & p.MM_ST_SPLIT
    inner = await remap(moved.result, 3 * P, 2 * P)         # [+2P, +3P) of a 4P region
    assert inner.status & p.MM_ST_SURE and inner.status & p.MM_ST_SPLIT
    assert await mm.region_at(moved.result + 3 * P) is not None
    past = await remap(moved.result, 8 * P, 2 * P, 0)        # runs past the region: waits
    assert past.result == moved.result and not past.status & p.MM_ST_SURE
    far = FREE_LOW + 256 * P
    fixed = await remap(moved.result, 2 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, far)
    assert fixed.result == far and not fixed.status & p.MM_ST_SURE
    shared = await mm.mmap(2 * P, flags=MAP_SHARED | MAP_ANONYMOUS, addr=FREE_LOW + 512 * P)
    assert not (await remap(shared, 2 * P, 4 * P)).status & p.MM_ST_SURE
    assert not (await remap(shared, 2 * P, P)).status & p.MM_ST_SURE


async def test_special_mappings_are_not_split_and_not_sure(mm: Mm) -> None:
    """[vdso]/[vvar] refuse a split on the host (EINVAL): MM refuses it first,
    record unchanged; their whole removal waits for the host (not MM_ST_SURE)."""
    await mm.spawn()
    space = mm.srv.acct.space(PID)
    vdso = FREE_LOW + 128 * P
    space.commit(Region(vdso, 2 * P, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
                        name="[vdso]"))
    before = await mm.maps()
    assert await mm.err(p.MmMunmap(caller=PID, addr=vdso, length=P)) == "EINVAL"
    assert await mm.err(p.MmMunmap(caller=PID, addr=vdso + P, length=4 * P)) == "EINVAL"
    assert await mm.err(mm.mmap_msg(P, PROT_READ, ANON | MAP_FIXED, vdso + P)) == "EINVAL"
    assert await mm.err(p.MmMprotect(caller=PID, addr=vdso, length=P, prot=PROT_READ)) == "EINVAL"
    assert await mm.err(p.MmMremap(caller=PID, old_addr=vdso, old_len=P, new_len=P,
                                   flags=MREMAP_MAYMOVE | MREMAP_FIXED,
                                   new_addr=vdso + 64 * P)) == "EINVAL"
    assert await mm.maps() == before
    whole = await mm.munmap(vdso, 2 * P)
    assert not whole.status & p.MM_ST_SURE and whole.token
    assert await mm.region_at(vdso) is None


async def test_undo_puts_the_record_back(mm: Mm) -> None:
    await mm.spawn()
    free = mm.srv.acct.frames.free_pages
    fresh = await mm.ok(mm.mmap_msg(2 * P, addr=FREE_LOW, flags=ANON | MAP_POPULATE))
    await mm.ok(p.MmUndo(caller=PID, token=fresh.token))
    assert await mm.region_at(FREE_LOW) is None and mm.srv.acct.frames.free_pages == free
    assert await mm.err(p.MmUndo(caller=PID, token=fresh.token)) == "EINVAL"   # used up
    base = await mm.mmap(4 * P, addr=FREE_LOW)
    before = await mm.maps()
    for msg in (mm.mmap_msg(P, PROT_NONE, ANON | MAP_FIXED, base + P),
                p.MmMunmap(caller=PID, addr=base + P, length=2 * P),
                p.MmMprotect(caller=PID, addr=base, length=P, prot=PROT_READ),
                p.MmMremap(caller=PID, old_addr=base, old_len=4 * P, new_len=8 * P,
                           flags=MREMAP_MAYMOVE),
                p.MmMremap(caller=PID, old_addr=base, old_len=4 * P, new_len=P, flags=0)):
        reply = await mm.ok(msg)
        assert await mm.maps() != before
        await mm.ok(p.MmUndo(caller=PID, token=reply.token))
        assert await mm.maps() == before, msg
    await mm.ok(p.MmSetBrk(caller=PID, brk=HEAP))
    g = await mm.ok(p.MmBrk(caller=PID, addr=HEAP + 3 * P))
    await mm.ok(p.MmUndo(caller=PID, token=g.token))
    assert (await mm.ok(p.MmBrk(caller=PID, addr=0))).result == HEAP
    assert await mm.region_at(HEAP) is None
    assert await mm.err(p.MmUndo(caller=6, token=g.token)) == "EINVAL"     # not 6's


# --- file mappings ---------------------------------------------------------------------------

REG = stat.S_IFREG | 0o644


def file_msg(length: int, prot: int = PROT_READ, flags: int = MAP_PRIVATE, *, addr: int = 0,
             offset: int = 0, mode: int = REG, open_flags: int = os.O_RDONLY, size: int = 10 * P,
             ino: int = 42, wb_fd: int = -1, pid: int = PID) -> p.MmMmapFile:
    return p.MmMmapFile(caller=pid, addr=addr, length=length, prot=prot, flags=flags, fd=3,
                        offset=offset, file_mode=mode, open_flags=open_flags, ino=ino, dev=7,
                        size=size, wb_fd=wb_fd)


async def test_file_map_validation_in_linux_order(mm: Mm) -> None:
    await mm.spawn()
    assert await mm.err(file_msg(P, open_flags=p.MM_NO_FD)) == "EBADF"
    assert await mm.err(file_msg(P, offset=5, open_flags=p.MM_NO_FD)) == "EINVAL"
    assert await mm.err(file_msg(P, open_flags=os.O_RDONLY | 0o10000000)) == "EBADF"  # O_PATH
    assert await mm.err(file_msg(0)) == "EINVAL"
    assert await mm.err(file_msg(P, offset=100)) == "EINVAL"
    assert await mm.err(file_msg(P, RW, MAP_SHARED)) == "EACCES"          # read-only fd
    assert await mm.err(file_msg(P, open_flags=os.O_WRONLY)) == "EACCES"
    assert await mm.err(file_msg(P, mode=stat.S_IFDIR | 0o755)) == "ENODEV"
    assert await mm.err(file_msg(P, mode=stat.S_IFIFO | 0o600)) == "ENODEV"
    assert await mm.err(file_msg(P, RW, MAP_SHARED, mode=stat.S_IFDIR)) == "EACCES"  # order
    assert (await mm.ok(file_msg(P, RW, MAP_PRIVATE))).result > 0          # private: fine
    assert (await mm.ok(file_msg(P, RW, MAP_SHARED, open_flags=os.O_RDWR))).result > 0


async def test_file_map_charges_up_to_the_end_of_the_file(mm: Mm) -> None:
    await mm.spawn()
    r = await mm.ok(file_msg(8 * P, offset=2 * P, size=5 * P + 10))
    assert await mm.usage() == (4, 0, 4)                            # pages 2..5 of the file
    line = next(e for e in await mm.maps() if e.start == r.result)
    assert (line.offset, line.inode, line.dev, line.perms) == (2 * P, 42, "00:07", "r--p")
    # a second process mapping the same file privately: frames of its own
    await mm.spawn(6)
    await mm.ok(file_msg(P, pid=6))
    assert await mm.usage(6) == (1, 0, 1)


async def test_shared_file_maps_register_write_back_fds(mm: Mm) -> None:
    await mm.spawn()
    shared: dict[str, Any] = {"prot": RW, "flags": MAP_SHARED, "open_flags": os.O_RDWR}
    a = (await mm.ok(file_msg(4 * P, **shared, wb_fd=800))).result
    # a second map of the same file: the new hidden fd is not needed
    b = await mm.ok(file_msg(P, **shared, offset=8 * P, wb_fd=801))
    assert p.unpack_fds(b.fds) == [801]
    # a private map never needs one
    c = await mm.ok(file_msg(P, wb_fd=802))
    assert p.unpack_fds(c.fds) == [802]
    # msync: the shared ranges, with the fd MM kept
    s = await mm.ok(p.MmMsync(caller=PID, addr=a, length=4 * P, flags=4))
    assert p.unpack_ranges(s.data) == [(a, 4 * P, 0, 800)] and s.status == 0
    s = await mm.ok(p.MmMsync(caller=PID, addr=a - 16 * P, length=20 * P, flags=4))
    assert s.status & p.MM_ST_HOLE
    assert p.unpack_ranges(s.data) == [(b.result, P, 8 * P, 800), (a, 4 * P, 0, 800)]
    assert await mm.err(p.MmMsync(caller=PID, addr=a + 1, length=P, flags=4)) == "EINVAL"
    assert await mm.err(p.MmMsync(caller=PID, addr=a, length=P, flags=5)) == "EINVAL"
    # munmap of part: write that part back first; the fd stays (more maps remain)
    u = await mm.munmap(a + P, P)
    assert p.unpack_ranges(u.data) == [(a + P, P, P, 800)] and u.fds == b""
    assert not u.status & p.MM_ST_SURE           # the kernel writes back, then waits
    # unmapping the rest of the file's maps releases the fd
    await mm.munmap(a, P)
    await mm.munmap(a + 2 * P, 2 * P)
    last = await mm.munmap(b.result, P)
    assert p.unpack_ranges(last.data) == [(b.result, P, 8 * P, 800)]
    assert p.unpack_fds(last.fds) == [800] and not last.status & p.MM_ST_SURE
    # undoing that munmap gives the fd back to MM
    await mm.ok(p.MmUndo(caller=PID, token=last.token))
    s = await mm.ok(p.MmMsync(caller=PID, addr=b.result, length=P, flags=1))
    assert p.unpack_ranges(s.data) == [(b.result, P, 8 * P, 800)]
    # a fork keeps the fds (the VFS copies the fd table)
    await mm.ok(p.MmFork(parent=PID, child=6))
    s = await mm.ok(p.MmMsync(caller=6, addr=b.result, length=P, flags=4))
    assert p.unpack_ranges(s.data) == [(b.result, P, 8 * P, 800)]


async def test_madvise_dontneed_releases_frames_and_spares_private_files(mm: Mm) -> None:
    await mm.spawn()
    a = await mm.mmap(4 * P, addr=FREE_LOW, flags=ANON | MAP_POPULATE)
    f = (await mm.ok(file_msg(2 * P, addr=FREE_LOW + 4 * P, flags=MAP_PRIVATE | MAP_FIXED))).result
    assert await mm.usage() == (6, 0, 6)
    r = await mm.ok(p.MmMadvise(caller=PID, addr=a, length=2 * P, advice=4))
    assert r.status == 0 and await mm.usage() == (4, 0, 4)        # the host call as it is
    r = await mm.ok(p.MmMadvise(caller=PID, addr=a, length=8 * P, advice=4))
    assert r.status == p.MM_ST_RANGES | p.MM_ST_HOLE
    assert p.unpack_ranges(r.data) == [(a, 4 * P, 0, -1)]          # not the file pages
    assert await mm.usage() == (2, 0, 2) and f == a + 4 * P
    r = await mm.ok(p.MmMadvise(caller=PID, addr=a, length=P, advice=2))   # WILLNEED: host's
    assert r.status == 0 and r.data == b""
    assert await mm.err(p.MmMadvise(caller=PID, addr=a + 1, length=P, advice=4)) == "EINVAL"


# --- who may ask, and bad input ------------------------------------------------------------


async def test_only_the_kernel_and_pm_change_records(mm: Mm, lattice: Lattice) -> None:
    await mm.spawn()
    await mm.spawn(6)
    lattice.register(6)
    lattice.connect_local(6, p.MM_PID)
    for body in (p.MmSpawn(pid=9), p.MmExit(pid=PID), p.MmFork(parent=PID, child=9),
                 p.MmExecLayout(pid=6, host_pid=os.getpid()), mm.mmap_msg(P, pid=6),
                 p.MmSetBrk(caller=6, brk=HEAP), p.MmUndo(caller=6, token=1)):
        assert await mm.err(body, src=6) == "EPERM", body
    assert await mm.err(p.MmMaps(pid=PID), src=6) == "EPERM"
    await mm.maps_reply(6, src=6)                                   # its own: fine


async def test_malformed_and_unknown_messages_get_error_replies(mm: Mm, lattice: Lattice) -> None:
    await mm.spawn()
    ep = lattice.endpoints[p.KERNEL_PID]
    for m_type, payload in ((p.MM_MMAP, b"\1\2\3"), (p.MM_SPAWN, b""),
                            (p.MM_MAPS, struct.pack("<iIx", PID, 0)), (349, b"")):
        req_id = lattice.new_req_id()
        pending = Pending()
        ep.pending[req_id] = pending
        lattice.send_bytes(p.KERNEL_PID, p.MM_PID, m_type,
                           p.HEADER.pack(0, m_type, req_id) + payload)
        with trio.fail_after(5):
            reply = await pending.wait()
        assert reply.body.error in (errno.EBADMSG, errno.EINVAL, errno.ENOSYS), m_type
    assert await mm.err(p.MmMunmap(caller=99, addr=FREE_LOW, length=P)) == "ESRCH"
    assert await mm.err(p.MmSpawn(pid=0)) == "EINVAL"
    assert await mm.err(p.MmFork(parent=PID, child=PID)) == "EINVAL"
    assert await mm.mmap(P) > 0                                     # still serving
