"""Per-process frame accounting and copy-on-write (xinim_host.mm.accounting)."""
from __future__ import annotations

import errno

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from xinim_host.mm.accounting import MemoryAccounting, Usage
from xinim_host.mm.errors import MmError, OutOfFrames
from xinim_host.mm.frames import FrameAllocator
from xinim_host.lib.vm_abi import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
)
from xinim_host.mm.regions import AddressSpace, FileBacking

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON_PRIV = MAP_PRIVATE | MAP_ANONYMOUS
POP = ANON_PRIV | MAP_POPULATE
FILE = FileBacking("vnode-1", path="/lib/x.so")


def acct(pages: int = 1024) -> MemoryAccounting:
    m = MemoryAccounting(FrameAllocator(pages * P, max_order=4))
    m.add(5)
    return m


def errno_of(fn, *args, **kw) -> int:
    with pytest.raises(MmError) as exc:
        fn(*args, **kw)
    return exc.value.errno


def test_policy_what_gets_charged_when() -> None:
    m = acct()
    m.mmap(5, 0, 4 * P, RW, ANON_PRIV)                       # plain anonymous: nothing yet
    assert m.usage(5) == Usage(used=0, shared=0, private=0, mapped_pages=4)
    pop = m.mmap(5, 0, 3 * P, RW, POP).addr                  # MAP_POPULATE: every page
    assert m.usage(5).used == 3
    f = m.mmap(5, 0, 5 * P, PROT_READ, MAP_PRIVATE, FILE, charge_bytes=2 * P + 1).addr
    assert m.usage(5).used == 6                              # filled pages of the file
    assert m.frame_of(5, f + 2 * P) is not None and m.frame_of(5, f + 3 * P) is None
    m.mmap(5, 0, 2 * P, PROT_READ, MAP_PRIVATE, FILE)        # default: the whole file map
    assert m.usage(5).used == 8
    assert m.frames.used_pages == 8
    assert m.frame_of(5, pop) is not None


def test_write_path_syscall_charges_anonymous_pages_once() -> None:
    m = acct()
    a = m.mmap(5, 0, 8 * P, RW, ANON_PRIV).addr
    assert m.charge(5, a + 100, 2 * P, write=True) == 3      # spans three pages
    assert m.charge(5, a, 4 * P, write=True) == 1            # only page 3 is new
    assert m.usage(5).used == 4 and m.frames.used_pages == 4
    assert m.charge(5, a, 0, write=True) == 0


def test_write_skips_or_faults_on_unmapped_and_read_only_pages() -> None:
    m = acct()
    ro = m.mmap(5, 0, 2 * P, PROT_READ, ANON_PRIV).addr
    assert m.charge(5, ro, 2 * P, write=True) == 0           # host decides the EFAULT
    assert m.charge(5, 0x1000_0000, P, write=True) == 0
    assert errno_of(m.charge, 5, ro, P, write=True, strict=True) == errno.EFAULT
    assert errno_of(m.charge, 5, 0x1000_0000, P, strict=True) == errno.EFAULT
    assert errno_of(m.charge, 5, ro, 3 * P, strict=True) == errno.EFAULT   # runs past the end
    assert m.frames.used_pages == 0


def test_fork_shares_frames_copy_on_write() -> None:
    m = acct()
    a = m.mmap(5, 0, 4 * P, RW, POP).addr
    frames = [m.frame_of(5, a + i * P) for i in range(4)]
    m.fork(5, 6)
    assert [m.frame_of(6, a + i * P) for i in range(4)] == frames
    assert all(m.frames.refcount(f) == 2 for f in frames)
    assert m.usage(5) == m.usage(6) == Usage(used=4, shared=4, private=0, mapped_pages=4)
    assert m.frames.used_pages == 4                          # nothing copied yet

    assert m.charge(6, a + P, 10, write=True) == 1           # child writes page 1: COW break
    assert m.frame_of(6, a + P) not in frames and m.frame_of(5, a + P) == frames[1]
    assert m.frames.refcount(frames[1]) == 1
    assert m.usage(6) == Usage(used=4, shared=3, private=1, mapped_pages=4)
    assert m.usage(5) == Usage(used=4, shared=3, private=1, mapped_pages=4)
    assert m.charge(6, a + P, 10, write=True) == 0           # already private
    assert m.charge(5, a + P, 10, write=True) == 0           # parent's is private again too
    assert m.charge(6, a, P, write=False) == 0               # a read-side fill does not copy

    m.munmap(5, a, 2 * P)                                    # parent drops pages 0 and 1
    assert m.frames.refcount(frames[0]) == 1 and m.frames.refcount(frames[1]) == 0
    assert m.usage(6) == Usage(used=4, shared=2, private=2, mapped_pages=4)
    m.exit(5)
    assert m.usage(6) == Usage(used=4, shared=0, private=4, mapped_pages=4)
    assert m.frames.used_pages == 4
    m.exit(6)
    assert m.frames.used_pages == 0
    m.frames.check_invariants()


def test_shared_mappings_stay_shared_across_fork_and_writes() -> None:
    m = acct()
    a = m.mmap(5, 0, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE).addr
    m.fork(5, 6)
    f = m.frame_of(5, a)
    assert m.charge(6, a, P, write=True) == 0                # no copy for MAP_SHARED
    assert m.frame_of(6, a) == f and m.frames.refcount(f) == 2
    m.exit(5)
    assert m.frames.refcount(f) == 1
    m.exit(6)
    assert m.frames.used_pages == 0


def test_shared_file_pages_are_one_frame_per_object_page() -> None:
    m = acct()
    m.add(6)
    shared_file = FileBacking("data")
    a = m.mmap(5, 0, 4 * P, RW, MAP_SHARED, shared_file).addr
    b = m.mmap(6, 0, 2 * P, RW, MAP_SHARED, shared_file, offset=2 * P).addr
    assert m.frames.used_pages == 4                          # pid 6 reuses pages 2 and 3
    assert m.frame_of(6, b) == m.frame_of(5, a + 2 * P)
    assert m.usage(5) == Usage(used=4, shared=2, private=2, mapped_pages=4)
    m.munmap(5, a, 4 * P)
    assert m.usage(6) == Usage(used=2, shared=0, private=2, mapped_pages=2)
    m.munmap(6, b, 2 * P)
    assert m.frames.used_pages == 0
    m.mmap(6, 0, P, RW, MAP_SHARED, shared_file)             # the object's page comes back new
    assert m.frames.used_pages == 1


def test_exhausting_the_pool_is_enomem_with_nothing_half_charged() -> None:
    m = acct(pages=16)
    a = m.mmap(5, 0, 10 * P, RW, POP).addr
    before = (m.space(5).regions, m.frames.free_pages)
    with pytest.raises(OutOfFrames) as exc:
        m.mmap(5, 0, 7 * P, RW, POP)
    assert exc.value.errno == errno.ENOMEM
    assert (m.space(5).regions, m.frames.free_pages) == before
    b = m.mmap(5, 0, 6 * P, RW, ANON_PRIV).addr               # unpopulated: fine
    assert m.charge(5, b, 6 * P, write=True) == 6             # exactly fills the pool
    assert m.frames.free_pages == 0
    c = m.mmap(5, 0, 4 * P, RW, ANON_PRIV).addr
    assert errno_of(m.charge, 5, c, 4 * P, write=True) == errno.ENOMEM
    assert m.frame_of(5, c) is None                           # not one page charged
    m.fork(5, 6)                                              # fork needs no frames
    assert errno_of(m.charge, 6, a, P, write=True) == errno.ENOMEM   # COW copy needs one
    assert m.frames.refcount(m.frame_of(6, a)) == 2
    m.frames.check_invariants()


def test_map_fixed_over_populated_pages_reuses_their_frames() -> None:
    m = acct(pages=8)
    a = m.mmap(5, 0, 8 * P, RW, POP).addr
    assert m.frames.free_pages == 0
    res = m.mmap(5, a, 8 * P, RW, POP | MAP_FIXED)           # replaced pages are reclaimed
    assert [r.length for r in res.replaced] == [8 * P]
    assert m.frames.free_pages == 0 and m.usage(5).used == 8
    m.fork(5, 6)                                              # now the frames are shared...
    assert errno_of(m.mmap, 5, a, 8 * P, RW, POP | MAP_FIXED) == errno.ENOMEM
    assert m.usage(5).used == 8 and m.space(5).find(a).length == 8 * P   # ...and untouched


def test_overcommit_heuristic_refuses_mappings_larger_than_the_pool() -> None:
    m = acct(pages=64)
    assert errno_of(m.mmap, 5, 0, 65 * P, RW, ANON_PRIV) == errno.ENOMEM
    assert len(m.space(5)) == 0
    m.mmap(5, 0, 65 * P, PROT_READ, ANON_PRIV)                # not writable: not accounted
    m.mmap(5, 0, 65 * P, RW, ANON_PRIV | MAP_NORESERVE)
    big = m.mmap(5, 0, 64 * P, RW, ANON_PRIV).addr            # the whole pool is fine
    assert errno_of(m.mremap, 5, big, 64 * P, 129 * P, True) == errno.ENOMEM
    h = m.space(5).heap_start
    assert m.brk(5, h + 65 * P) == h                          # refused: old break
    assert m.brk(5, h + 64 * P) == h + 64 * P
    assert m.frames.used_pages == 0


def test_munmap_mremap_brk_and_discard_release_frames() -> None:
    m = acct()
    a = m.mmap(5, 0x2000_0000, 8 * P, RW, POP | MAP_FIXED).addr
    m.munmap(5, a + 6 * P, 2 * P)
    assert m.usage(5).used == 6
    frames = [m.frame_of(5, a + i * P) for i in range(6)]
    res = m.mremap(5, a, 6 * P, 4 * P, True)                  # shrink in place
    assert res.addr == a and m.usage(5).used == 4
    m.mmap(5, a + 4 * P, P, PROT_READ, ANON_PRIV | MAP_FIXED)  # block growth in place
    res = m.mremap(5, a, 4 * P, 16 * P, True)                 # grow by moving
    assert res.addr != a and m.usage(5).used == 4
    assert [m.frame_of(5, res.addr + i * P) for i in range(4)] == frames[:4]
    assert m.frame_of(5, a) is None
    t = 0x3000_0000
    m.mmap(5, t, 2 * P, RW, POP | MAP_FIXED)
    res2 = m.mremap(5, res.addr, 16 * P, 2 * P, True, t)      # onto populated pages
    assert res2.addr == t and m.usage(5).used == 2
    assert [m.frame_of(5, t + i * P) for i in range(2)] == frames[:2]
    assert m.discard(5, t, P) == 1 and m.usage(5).used == 1
    h = m.space(5).heap_start
    m.brk(5, h + 4 * P)
    m.charge(5, h, 4 * P, write=True)
    assert m.usage(5).used == 5
    m.brk(5, h + P)
    assert m.usage(5).used == 2 and m.frames.used_pages == 2
    assert errno_of(m.discard, 5, t + 1, P) == errno.EINVAL


def test_exec_and_exit_release_everything() -> None:
    m = acct()
    m.mmap(5, 0, 4 * P, RW, POP)
    old = m.exec(5, AddressSpace())
    assert len(old) == 1 and m.frames.used_pages == 0 and len(m.space(5)) == 0
    m.mmap(5, 0, P, RW, POP)
    assert [r.length for r in m.exit(5)] == [P]
    assert m.frames.used_pages == 0 and 5 not in m


def test_unknown_pid_is_esrch_and_duplicates_are_bugs() -> None:
    m = acct()
    assert errno_of(m.mmap, 9, 0, P, RW, ANON_PRIV) == errno.ESRCH
    assert errno_of(m.usage, 9) == errno.ESRCH
    assert errno_of(m.fork, 9, 10) == errno.ESRCH
    with pytest.raises(ValueError):
        m.add(5)
    m.add(6)
    with pytest.raises(ValueError):
        m.fork(5, 6)
    assert m.pids() == [5, 6]


def test_errors_from_the_record_leave_the_pool_alone() -> None:
    m = acct()
    a = m.mmap(5, 0, 2 * P, RW, POP).addr
    m.mmap(5, a + 2 * P, P, PROT_READ, ANON_PRIV | MAP_FIXED)
    assert errno_of(m.mmap, 5, a, P, RW, POP | 0x100000) == errno.EEXIST
    assert errno_of(m.munmap, 5, a + 1, P) == errno.EINVAL
    assert errno_of(m.mprotect, 5, a, 4 * P, PROT_READ) == errno.ENOMEM
    assert errno_of(m.mremap, 5, a, 2 * P, 4 * P, False) == errno.ENOMEM
    assert errno_of(m.mremap, 5, a, 3 * P, 4 * P, True) == errno.EFAULT
    assert m.usage(5).used == 2 and m.frames.used_pages == 2


class ForkMachine(RuleBasedStateMachine):
    """Random fork/exit/mmap/munmap/write across processes: every reference a
    process holds is counted in the pool, and nothing is left at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.m = MemoryAccounting(FrameAllocator(48 * P, max_order=3))
        self.m.add(5)
        self.next_pid = 6
        self.base = 0x2000_0000

    def pid(self, data: st.DataObject) -> int:
        return data.draw(st.sampled_from(self.m.pids()))

    @rule(data=st.data(), page=st.integers(0, 7), n=st.integers(1, 4),
          kind=st.sampled_from(["anon", "pop", "shared", "file"]))
    def mmap(self, data: st.DataObject, page: int, n: int, kind: str) -> None:
        pid = self.pid(data)
        flags, backing = {"anon": (ANON_PRIV, None), "pop": (POP, None),
                          "shared": (MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, None),
                          "file": (MAP_PRIVATE, FileBacking("f"))}[kind]
        kw = {"backing": backing} if backing else {}
        try:
            self.m.mmap(pid, self.base + page * P, n * P, RW, flags | MAP_FIXED, **kw)
        except OutOfFrames:
            pass

    @rule(data=st.data(), page=st.integers(0, 7), n=st.integers(1, 4))
    def munmap(self, data: st.DataObject, page: int, n: int) -> None:
        self.m.munmap(self.pid(data), self.base + page * P, n * P)

    @rule(data=st.data(), page=st.integers(0, 7), n=st.integers(1, 4))
    def write(self, data: st.DataObject, page: int, n: int) -> None:
        pid = self.pid(data)
        before = dict(self.m._procs[pid].pages)
        try:
            self.m.charge(pid, self.base + page * P, n * P, write=True)
        except OutOfFrames:
            assert self.m._procs[pid].pages == before        # all or nothing

    @rule(data=st.data(), page=st.integers(0, 7), old=st.integers(1, 4),
          new=st.integers(1, 6), may_move=st.booleans())
    def mremap(self, data: st.DataObject, page: int, old: int, new: int,
               may_move: bool) -> None:
        pid = self.pid(data)
        proc = self.m._procs[pid]
        before = (dict(proc.pages), proc.space.regions)
        try:
            self.m.mremap(pid, self.base + page * P, old * P, new * P, may_move)
        except MmError as exc:
            assert exc.errno in (errno.EFAULT, errno.ENOMEM)
            assert (proc.pages, proc.space.regions) == before

    @rule(data=st.data(), pages=st.integers(0, 6))
    def brk(self, data: st.DataObject, pages: int) -> None:
        pid = self.pid(data)
        h = self.m.space(pid).heap_start
        if self.m.brk(pid, h + pages * P) == h + pages * P:
            try:
                self.m.charge(pid, h, pages * P, write=True)
            except OutOfFrames:
                pass

    @precondition(lambda self: len(self.m.pids()) < 6)
    @rule(data=st.data())
    def fork(self, data: st.DataObject) -> None:
        self.m.fork(self.pid(data), self.next_pid)
        self.next_pid += 1

    @precondition(lambda self: len(self.m.pids()) > 1)
    @rule(data=st.data())
    def exit(self, data: st.DataObject) -> None:
        self.m.exit(self.pid(data))

    @invariant()
    def references_add_up(self) -> None:
        fa = self.m.frames
        fa.check_invariants()
        refs: dict[int, int] = {}
        for pid in self.m.pids():
            proc = self.m._procs[pid]
            for page, frame in proc.pages.items():
                assert proc.space.find(page) is not None, "charged page outside the record"
                refs[frame] = refs.get(frame, 0) + 1
        assert fa.allocated_blocks == len(refs)
        assert all(fa.refcount(f) == n for f, n in refs.items())
        assert fa.used_pages == len(refs)

    def teardown(self) -> None:
        for pid in self.m.pids():
            self.m.exit(pid)
        assert self.m.frames.free_pages == self.m.frames.total_pages
        assert not self.m._objects and not self.m._object_of


TestForkMachine = ForkMachine.TestCase
TestForkMachine.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
