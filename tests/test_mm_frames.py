"""The buddy allocator of page frames (xinim_host.mm.frames)."""
from __future__ import annotations

import errno
import random

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from xinim_host.lib.errors import SysError
from xinim_host.mm.errors import MmError, OutOfFrames
from xinim_host.mm.frames import FrameAllocator
from xinim_host.lib.vm_abi import PAGE_SIZE


def pool(pages: int, max_order: int = 4) -> FrameAllocator:
    return FrameAllocator(pages * PAGE_SIZE, max_order)


def test_default_pool_is_256_mib_of_max_order_blocks() -> None:
    fa = FrameAllocator()
    assert fa.total_pages == 65536 and fa.free_pages == 65536 and fa.used_pages == 0
    assert len(fa.free_blocks(fa.max_order)) == 65536 >> fa.max_order
    fa.check_invariants()


def test_odd_sized_pool_is_carved_into_aligned_blocks() -> None:
    fa = pool(13, max_order=2)        # 13 = 4+4+4+1
    assert fa.free_blocks(2) == {0, 4, 8} and fa.free_blocks(0) == {12}
    fa.check_invariants()
    frames = [fa.alloc(0) for _ in range(13)]
    assert sorted(frames) == list(range(13))
    with pytest.raises(OutOfFrames):
        fa.alloc(0)
    for f in frames:
        fa.free(f, 0)
    assert fa.free_blocks(2) == {0, 4, 8} and fa.free_blocks(0) == {12}
    fa.check_invariants()


def test_split_on_alloc_and_coalesce_on_free() -> None:
    fa = pool(16, max_order=4)
    a = fa.alloc(0)
    assert a == 0
    # one 16-frame block split into 8+4+2+1 free halves plus the one handed out
    assert [fa.free_blocks(k) for k in range(5)] == [{1}, {2}, {4}, {8}, set()]
    b = fa.alloc(0)                   # takes the order-0 buddy, no split needed
    assert b == 1 and fa.free_blocks(0) == set()
    c = fa.alloc(1)
    assert c == 2 and fa.free_pages == 12 and fa.used_pages == 4
    fa.free(a, 0)                     # buddy 1 still used: no merge
    assert fa.free_blocks(0) == {0}
    fa.free(b, 0)                     # 0+1 -> order 1, buddy 2 used: stop
    assert fa.free_blocks(0) == set() and fa.free_blocks(1) == {0}
    fa.free(c, 1)                     # cascades all the way up
    assert [fa.free_blocks(k) for k in range(5)] == [set(), set(), set(), set(), {0}]
    assert fa.free_pages == 16
    fa.check_invariants()


def test_large_order_fails_when_fragmented_even_with_free_pages() -> None:
    fa = pool(8, max_order=3)
    frames = [fa.alloc(0) for _ in range(8)]
    for f in frames[::2]:
        fa.free(f, 0)
    assert fa.free_pages == 4
    with pytest.raises(OutOfFrames) as exc:
        fa.alloc(1)
    assert exc.value.errno == errno.ENOMEM
    assert fa.free_pages == 4
    fa.check_invariants()


def test_out_of_frames_is_an_errno_error() -> None:
    assert issubclass(OutOfFrames, MmError) and issubclass(MmError, SysError)
    fa = pool(1, max_order=0)
    fa.alloc(0)
    with pytest.raises(SysError) as exc:
        fa.alloc(0)
    assert exc.value.errno == errno.ENOMEM


@pytest.mark.parametrize("order", [-1, 5])
def test_bad_order_is_a_bug(order: int) -> None:
    with pytest.raises(ValueError):
        pool(16).alloc(order)


def test_double_free_foreign_frame_and_wrong_order_are_detected() -> None:
    fa = pool(16)
    f = fa.alloc(2)
    with pytest.raises(ValueError, match="order"):
        fa.free(f, 1)
    with pytest.raises(ValueError, match="not an allocated block"):
        fa.free(f + 1, 0)             # inside the block, not its head
    with pytest.raises(ValueError, match="outside the pool"):
        fa.free(99, 0)
    fa.free(f, 2)
    with pytest.raises(ValueError, match="double free"):
        fa.free(f, 2)
    with pytest.raises(ValueError):
        fa.release(f)
    with pytest.raises(ValueError):
        fa.share(f)
    fa.check_invariants()
    assert fa.free_pages == 16


def test_refcounts_share_and_release() -> None:
    fa = pool(16)
    f = fa.alloc(0)
    assert fa.refcount(f) == 1
    assert fa.share(f) == 2 and fa.share(f) == 3
    with pytest.raises(ValueError, match="shared"):
        fa.free(f, 0)                 # others still reference it
    assert fa.release(f) is False and fa.release(f) is False
    assert fa.refcount(f) == 1 and fa.used_pages == 1
    assert fa.release(f) is True
    assert fa.refcount(f) == 0 and fa.free_pages == 16
    fa.check_invariants()


def test_alloc_pages_is_all_or_nothing() -> None:
    fa = pool(16)
    big = fa.alloc(3)
    with pytest.raises(OutOfFrames):
        fa.alloc_pages(9)
    assert fa.free_pages == 8 and fa.allocated_blocks == 1
    frames = fa.alloc_pages(8)
    assert len(set(frames)) == 8 and fa.free_pages == 0
    for f in frames:
        fa.release(f)
    fa.release(big)
    assert fa.free_pages == 16
    fa.check_invariants()


def _random_run(fa: FrameAllocator, ops: int, seed: int, owner: bytearray | None) -> list:
    """``ops`` random alloc/free calls; with ``owner`` every frame's owner is
    tracked and a block handed out twice fails the test."""
    rng = random.Random(seed)
    live: list[tuple[int, int]] = []
    for i in range(ops):
        # drift towards a busy pool so that splitting and fragmentation happen
        if live and (rng.random() < 0.45 or fa.free_pages < 64):
            k = rng.randrange(len(live))
            live[k], live[-1] = live[-1], live[k]
            frame, order = live.pop()
            if owner is not None:
                n = 1 << order
                assert owner[frame:frame + n] == bytes([1]) * n
                owner[frame:frame + n] = bytes(n)
            fa.free(frame, order)
        else:
            order = min(rng.randrange(0, 8), rng.randrange(0, 8))   # mostly small
            try:
                frame = fa.alloc(order)
            except OutOfFrames:
                continue
            if owner is not None:
                n = 1 << order
                assert frame % n == 0
                assert owner[frame:frame + n] == bytes(n), "frame handed out twice"
                owner[frame:frame + n] = bytes([1]) * n
            live.append((frame, order))
    return live


def test_100k_random_alloc_free_no_leak_no_double_ownership() -> None:
    fa = FrameAllocator(64 << 20)
    owner = bytearray(fa.total_pages)
    live = _random_run(fa, 100_000, seed=6, owner=owner)
    assert fa.used_pages == sum(1 << o for _, o in live) == sum(owner)
    fa.check_invariants()             # free lists disjoint, aligned, coalesced
    for frame, order in live:
        fa.free(frame, order)
    assert fa.free_pages == fa.total_pages and fa.allocated_blocks == 0
    fa.check_invariants()
    # fully coalesced again: nothing but max-order blocks
    assert all(not fa.free_blocks(k) for k in range(fa.max_order))
    assert len(fa.free_blocks(fa.max_order)) == fa.total_pages >> fa.max_order


class _CountingSet(set):
    """A free list that counts the set operations the allocator makes on it."""

    def __init__(self, items: set[int], counter: list[int]) -> None:
        super().__init__(items)
        self.counter = counter

    def __len__(self) -> int:                       # truth tests: ``if self._free[k]``
        self.counter[0] += 1
        return super().__len__()

    def __contains__(self, item: object) -> bool:
        self.counter[0] += 1
        return super().__contains__(item)

    def add(self, item: int) -> None:
        self.counter[0] += 1
        super().add(item)

    def remove(self, item: int) -> None:
        self.counter[0] += 1
        super().remove(item)

    def pop(self) -> int:
        self.counter[0] += 1
        return super().pop()


@pytest.mark.parametrize("phys", [64 << 20, 1 << 30])
def test_100k_random_alloc_free_cost_log_n_set_operations(phys: int) -> None:
    """The promise of the module docstring, counted instead of timed: every alloc
    and free is O(max_order) set operations, whatever the pool size (no scan)."""
    fa = FrameAllocator(phys)
    counter = [0]
    fa._free = [_CountingSet(heads, counter) for heads in fa._free]
    worst = {"alloc": 0, "free": 0}

    def counted(name: str, fn):
        def wrapper(*args):
            before = counter[0]
            try:
                return fn(*args)
            finally:
                worst[name] = max(worst[name], counter[0] - before)
        return wrapper

    fa.alloc = counted("alloc", fa.alloc)          # type: ignore[method-assign]
    fa.free = counted("free", fa.free)             # type: ignore[method-assign]
    live = _random_run(fa, 100_000, seed=7, owner=None)
    for frame, order in live:
        fa.free(frame, order)
    assert fa.free_pages == fa.total_pages
    # alloc: one truth test per order tried, one pop, one add per split;
    # free: one membership test and one remove per merge, one add
    bound = 2 * (fa.max_order + 1) + 1
    assert 0 < worst["alloc"] <= bound and 0 < worst["free"] <= bound, (worst, bound)


class BuddyMachine(RuleBasedStateMachine):
    """Random alloc/free/share/release against a model of who owns what."""

    def __init__(self) -> None:
        super().__init__()
        self.fa = FrameAllocator(37 * PAGE_SIZE, max_order=3)   # odd size on purpose
        self.refs: dict[int, tuple[int, int]] = {}               # head -> (order, refs)

    @rule(order=st.integers(0, 3))
    def alloc(self, order: int) -> None:
        try:
            f = self.fa.alloc(order)
        except OutOfFrames:
            # legitimate only if no free block of that order or larger exists
            assert all(not self.fa.free_blocks(k) for k in range(order, 4))
            return
        for head, (o, _) in self.refs.items():
            assert f + (1 << order) <= head or head + (1 << o) <= f, "overlap"
        self.refs[f] = (order, 1)

    @precondition(lambda self: self.refs)
    @rule(data=st.data())
    def share(self, data: st.DataObject) -> None:
        f = data.draw(st.sampled_from(sorted(self.refs)))
        o, n = self.refs[f]
        assert self.fa.share(f) == n + 1
        self.refs[f] = (o, n + 1)

    @precondition(lambda self: self.refs)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        f = data.draw(st.sampled_from(sorted(self.refs)))
        o, n = self.refs[f]
        assert self.fa.release(f) is (n == 1)
        if n == 1:
            del self.refs[f]
        else:
            self.refs[f] = (o, n - 1)

    @precondition(lambda self: self.refs)
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        f = data.draw(st.sampled_from(sorted(self.refs)))
        o, n = self.refs[f]
        if n > 1:
            with pytest.raises(ValueError):
                self.fa.free(f, o)
        else:
            self.fa.free(f, o)
            del self.refs[f]
            with pytest.raises(ValueError):
                self.fa.free(f, o)

    @invariant()
    def consistent(self) -> None:
        self.fa.check_invariants()
        assert self.fa.used_pages == sum(1 << o for o, _ in self.refs.values())
        for f, (_, n) in self.refs.items():
            assert self.fa.refcount(f) == n


TestBuddyMachine = BuddyMachine.TestCase
TestBuddyMachine.settings = settings(max_examples=60, stateful_step_count=60, deadline=None)
