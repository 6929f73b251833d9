"""The per-process address-space record (xinim_host.mm.regions)."""
from __future__ import annotations

import errno
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xinim_host.mm.errors import MmError
from xinim_host.lib.vm_abi import (
    DEFAULT_MMAP_BASE,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_SYNC,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_GROWSDOWN,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    STACK_GUARD_GAP,
    TASK_SIZE,
)
from xinim_host.mm.regions import (
    ANON,
    AddressSpace,
    FileBacking,
    Region,
    SharedBacking,
    parse_maps,
)

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
ANON_PRIV = MAP_PRIVATE | MAP_ANONYMOUS
BASE = DEFAULT_MMAP_BASE
LIB = FileBacking("libc", path="/lib/libc.so.6", inode=7, dev=(0, 0x2F))


def errno_of(fn, *args, **kw) -> int:
    with pytest.raises(MmError) as exc:
        fn(*args, **kw)
    return exc.value.errno


def spans(space: AddressSpace) -> list[tuple[int, int, int]]:
    return [(r.start, r.end, r.prot) for r in space]


def assert_well_formed(space: AddressSpace) -> None:
    regions = list(space)
    for r in regions:
        assert r.start % P == 0 and r.length % P == 0 and r.length > 0
    for a, b in itertools.pairwise(regions):
        assert a.end <= b.start, "regions overlap or are unsorted"
        assert not a.joins(b), f"mergeable neighbours left apart: {a} {b}"


# --- address selection ---------------------------------------------------------------


def test_mmap_is_top_down_below_the_base_and_merges_neighbours() -> None:
    s = AddressSpace()
    a = s.map(0, 2 * P, RW, ANON_PRIV).addr
    b = s.map(0, 3 * P, RW, ANON_PRIV).addr
    assert a == BASE - 2 * P and b == a - 3 * P
    assert spans(s) == [(b, BASE, RW)]        # adjacent and compatible: one region
    c = s.map(0, P, PROT_READ, ANON_PRIV).addr
    assert c == b - P and len(s) == 2         # other prot: its own region


def test_length_is_rounded_up_to_pages() -> None:
    s = AddressSpace()
    r = s.map(0, 1, RW, ANON_PRIV).region
    assert r.length == P and r.start == BASE - P


def test_free_hint_is_honoured_and_busy_hint_ignored() -> None:
    s = AddressSpace()
    hint = 0x1000_0000
    assert s.map(hint, P, RW, ANON_PRIV).addr == hint
    assert s.map(hint + 5, P, RW, ANON_PRIV).addr == BASE - P      # busy: top-down instead
    assert s.map(hint + 2 * P + 123, P, RW, ANON_PRIV).addr == hint + 2 * P   # rounded down
    assert s.map(0x100, P, RW, ANON_PRIV).addr == s.min_addr        # raised to mmap_min_addr
    assert s.find_free(P, hint) != hint


def test_top_down_first_fit_takes_the_highest_hole_that_fits() -> None:
    s = AddressSpace()
    s.map(BASE - 10 * P, 10 * P, RW, ANON_PRIV | MAP_FIXED)
    s.unmap(BASE - 3 * P, P)                  # 1-page hole high up
    s.unmap(BASE - 8 * P, 3 * P)              # 3-page hole lower down
    assert s.find_free(P) == BASE - 3 * P
    assert s.find_free(2 * P) == BASE - 7 * P  # top of the 3-page hole [-8P, -5P)
    assert s.find_free(4 * P) == BASE - 14 * P  # below everything


def test_search_falls_back_above_the_base_then_gives_enomem() -> None:
    s = AddressSpace(mmap_base=0x20000, min_addr=0x10000, task_size=0x40000)
    assert s.map(0, 0x10000, RW, ANON_PRIV).addr == 0x10000
    assert s.map(0, 0x10000, RW, ANON_PRIV).addr == 0x20000          # bottom-up above base
    assert s.map(0, 0x10000, PROT_READ, ANON_PRIV).addr == 0x30000
    assert errno_of(s.map, 0, P, RW, ANON_PRIV) == errno.ENOMEM


def test_stack_guard_gap_is_kept_free() -> None:
    s = AddressSpace()
    top = 0x7FFF_FF00_0000
    s.map(top, 32 * P, RW, ANON_PRIV | MAP_GROWSDOWN | MAP_FIXED, name="[stack]")
    assert s.find_free(P, hint=top - P) != top - P
    assert s.find_free(P, hint=top - STACK_GUARD_GAP - P) == top - STACK_GUARD_GAP - P


# --- mmap validation --------------------------------------------------------------------


@pytest.mark.parametrize("call, err", [
    ({"length": 0}, errno.EINVAL),
    ({"offset": 123, "flags": MAP_PRIVATE, "backing": LIB}, errno.EINVAL),
    ({"offset": 5}, errno.EINVAL),                                  # also for anonymous
    ({"addr": 0x1000_0001, "flags": ANON_PRIV | MAP_FIXED}, errno.EINVAL),
    ({"addr": TASK_SIZE, "flags": ANON_PRIV | MAP_FIXED}, errno.ENOMEM),
    ({"addr": 0x1000, "flags": ANON_PRIV | MAP_FIXED}, errno.EPERM),   # below mmap_min_addr
    ({"length": 1 << 63}, errno.ENOMEM),
    ({"length": (1 << 64) - 1}, errno.ENOMEM),
    ({"flags": MAP_ANONYMOUS}, errno.EINVAL),                       # no map type
    ({"flags": MAP_SHARED_VALIDATE | MAP_ANONYMOUS}, errno.EINVAL),
    ({"flags": MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN}, errno.EINVAL),
    ({"flags": MAP_PRIVATE}, errno.EBADF),                          # file map, no file
    ({"flags": MAP_SHARED_VALIDATE | MAP_SYNC, "backing": LIB}, errno.EOPNOTSUPP),
    ({"flags": MAP_SHARED, "backing": FileBacking("ro", may_write=False)}, errno.EACCES),
    ({"flags": MAP_PRIVATE, "backing": FileBacking("wo", may_read=False)}, errno.EACCES),
])
def test_mmap_errnos(call: dict, err: int) -> None:
    s = AddressSpace()
    args = {"addr": 0, "length": P, "prot": RW, "flags": ANON_PRIV} | call
    assert errno_of(s.map, **args) == err
    assert len(s) == 0


def test_read_only_fd_allows_private_writable_and_shared_read_only() -> None:
    s = AddressSpace()
    ro = FileBacking("ro", may_write=False)
    s.map(0, P, RW, MAP_PRIVATE, ro)
    s.map(0, P, PROT_READ, MAP_SHARED, ro)
    assert errno_of(s.protect, s.regions[0].start, P, RW) == errno.EACCES


def test_fixed_noreplace_eexist_wins_over_later_checks() -> None:
    s = AddressSpace()
    a = s.map(0, 3 * P, RW, ANON_PRIV).addr
    assert errno_of(s.map, a + P, P, RW, ANON_PRIV | MAP_FIXED_NOREPLACE) == errno.EEXIST
    # Linux checks the overlap before the map type
    assert errno_of(s.map, a + P, P, RW, MAP_ANONYMOUS | MAP_FIXED_NOREPLACE) == errno.EEXIST
    assert s.map(a - P, P, RW, ANON_PRIV | MAP_FIXED_NOREPLACE).addr == a - P
    assert spans(s) == [(a - P, a + 3 * P, RW)]


def test_map_fixed_replaces_the_overlapped_parts() -> None:
    s = AddressSpace()
    a = s.map(0, 4 * P, RW, ANON_PRIV).addr
    f = s.map(0, 4 * P, PROT_READ, MAP_PRIVATE, LIB, offset=0x10000).addr
    res = s.map(a - 2 * P, 4 * P, PROT_EXEC, ANON_PRIV | MAP_FIXED)   # straddles both
    assert f == a - 4 * P and res.addr == a - 2 * P
    assert [(r.start, r.length) for r in res.replaced] == [(a - 2 * P, 2 * P), (a, 2 * P)]
    assert res.replaced[0].backing == LIB.at(0x10000 + 2 * P)       # offset follows the split
    assert spans(s) == [(f, f + 2 * P, PROT_READ), (a - 2 * P, a + 2 * P, PROT_EXEC),
                        (a + 2 * P, a + 4 * P, RW)]
    assert s.regions[0].backing.offset == 0x10000
    assert_well_formed(s)


def test_flags_kept_in_the_region_are_only_lasting_ones() -> None:
    s = AddressSpace()
    r = s.map(0x2000_0000, P, RW, ANON_PRIV | MAP_FIXED | MAP_POPULATE).region
    assert r.flags == ANON_PRIV and r.backing is ANON
    sh = s.map(0, P, RW, MAP_SHARED | MAP_ANONYMOUS).region
    assert sh.shared and isinstance(sh.backing, SharedBacking)
    sv = s.map(0, P, RW, MAP_SHARED_VALIDATE, LIB).region
    assert sv.flags == MAP_SHARED and sv.backing == LIB


# --- munmap -------------------------------------------------------------------------


def test_munmap_splits_and_returns_removed_pieces() -> None:
    s = AddressSpace()
    a = s.map(0, 8 * P, PROT_READ, MAP_PRIVATE, LIB).addr
    removed = s.unmap(a + 2 * P, 3 * P)
    assert [(r.start, r.length, r.backing.offset) for r in removed] == [(a + 2 * P, 3 * P, 2 * P)]
    assert [(r.start, r.end, r.backing.offset) for r in s] == [
        (a, a + 2 * P, 0), (a + 5 * P, a + 8 * P, 5 * P)]
    assert s.unmap(a + 2 * P, 3 * P) == []          # nothing there: still success
    removed = s.unmap(a, 8 * P)                     # across the hole
    assert [(r.start, r.length) for r in removed] == [(a, 2 * P), (a + 5 * P, 3 * P)]
    assert len(s) == 0


def test_munmap_errnos() -> None:
    s = AddressSpace()
    assert errno_of(s.unmap, 0x1000_0001, P) == errno.EINVAL
    assert errno_of(s.unmap, 0x1000_0000, 0) == errno.EINVAL
    assert errno_of(s.unmap, TASK_SIZE, P) == errno.EINVAL


def test_1000_regions_then_every_other_one_unmapped() -> None:
    s = AddressSpace()
    addrs = [s.map(0, P, RW, ANON_PRIV).addr for _ in range(1000)]
    assert addrs == [BASE - (i + 1) * P for i in range(1000)]
    assert len(s) == 1                               # Linux merges them into one vma too
    for a in addrs[::2]:
        s.unmap(a, P)
    assert len(s) == 500
    assert sorted(r.start for r in s) == sorted(addrs[1::2])
    assert all(r.length == P for r in s)
    assert_well_formed(s)
    mid = sorted(addrs[1::2])[250]                   # PROT_NONE over a mapped page in the middle
    s.protect(mid, P, PROT_NONE)
    assert s.find(mid).prot == PROT_NONE and len(s) == 500
    assert s.find(mid + P) is None                   # the unmapped neighbour stays unmapped
    lines = s.format_maps().splitlines()
    assert len(lines) == 500 and sum("---p" in line for line in lines) == 1


def test_1000_distinct_regions_then_every_other_one_unmapped() -> None:
    s = AddressSpace()
    prots = [PROT_READ, RW]
    addrs = [s.map(0, 2 * P, prots[i % 2], ANON_PRIV).addr for i in range(1000)]
    assert len(s) == 1000
    for a in addrs[::2]:
        s.unmap(a, 2 * P)
    assert len(s) == 500 and all(r.prot == RW for r in s)
    assert_well_formed(s)
    # the holes are reused top-down
    assert s.map(0, 2 * P, RW, ANON_PRIV).addr == addrs[0]


def test_map_count_limit_gives_enomem_without_change() -> None:
    s = AddressSpace(max_map_count=3)
    a = s.map(0, 8 * P, RW, ANON_PRIV).addr
    s.unmap(a + P, P)
    s.unmap(a + 3 * P, P)                       # 3 regions now
    before = s.regions
    assert errno_of(s.unmap, a + 5 * P, P) == errno.ENOMEM
    assert errno_of(s.protect, a + 6 * P, P, PROT_READ) == errno.ENOMEM
    assert s.regions == before


# --- mprotect -----------------------------------------------------------------------


def test_mprotect_splits_and_merges_back() -> None:
    s = AddressSpace()
    a = s.map(0, 6 * P, RW, ANON_PRIV).addr
    s.protect(a + 2 * P, 2 * P, PROT_READ)
    assert spans(s) == [(a, a + 2 * P, RW), (a + 2 * P, a + 4 * P, PROT_READ),
                        (a + 4 * P, a + 6 * P, RW)]
    s.protect(a + 2 * P, P, RW)                    # left half rejoins the first region
    assert spans(s) == [(a, a + 3 * P, RW), (a + 3 * P, a + 4 * P, PROT_READ),
                        (a + 4 * P, a + 6 * P, RW)]
    s.protect(a + 3 * P, P, RW)
    assert spans(s) == [(a, a + 6 * P, RW)]


def test_mprotect_file_pieces_keep_offsets_and_merge_only_when_continuous() -> None:
    s = AddressSpace()
    a = s.map(0, 4 * P, PROT_READ, MAP_PRIVATE, LIB).addr
    s.protect(a + P, 2 * P, PROT_READ | PROT_EXEC)
    assert [r.backing.offset for r in s] == [0, P, 3 * P]
    s.protect(a, 4 * P, PROT_READ)
    assert len(s) == 1 and s.regions[0].backing.offset == 0
    b = s.map(a + 4 * P, P, PROT_READ, MAP_PRIVATE | MAP_FIXED, LIB, offset=9 * P).addr
    assert b == a + 4 * P and len(s) == 2           # adjacent but offsets not continuous


def test_accounted_and_unaccounted_regions_do_not_merge() -> None:
    # Linux: a private mapping that was ever writable carries VM_ACCOUNT, and
    # vma_merge() will not join it with one that never was.
    s = AddressSpace()
    a = 0x2000_0000
    s.map(a, 2 * P, PROT_READ, ANON_PRIV | MAP_FIXED)
    s.map(a + 2 * P, 2 * P, RW, ANON_PRIV | MAP_FIXED)
    s.map(a + 4 * P, 2 * P, PROT_READ, MAP_PRIVATE | MAP_FIXED, LIB)
    s.map(a + 6 * P, 2 * P, RW, MAP_PRIVATE | MAP_FIXED, LIB, offset=2 * P)
    assert [r.accounted for r in s] == [False, True, False, True]
    s.protect(a + 6 * P, 2 * P, PROT_READ)          # a file keeps VM_ACCOUNT: apart
    assert spans(s)[2:] == [(a + 4 * P, a + 6 * P, PROT_READ), (a + 6 * P, a + 8 * P, PROT_READ)]
    s.protect(a + 2 * P, 2 * P, PROT_READ)          # untouched anonymous memory loses it
    assert spans(s)[0] == (a, a + 4 * P, PROT_READ) and not s.regions[0].accounted
    n = s.map(0, P, RW, ANON_PRIV | 0x4000).region  # MAP_NORESERVE: never accounted
    assert not n.accounted


def test_mprotect_errnos_and_atomicity() -> None:
    s = AddressSpace()
    a = s.map(0, 4 * P, RW, ANON_PRIV).addr
    s.unmap(a + 2 * P, P)
    before = s.regions
    assert errno_of(s.protect, a, 4 * P, PROT_READ) == errno.ENOMEM     # hole inside
    assert errno_of(s.protect, a - P, 2 * P, PROT_READ) == errno.ENOMEM  # starts in a hole
    assert errno_of(s.protect, 0x1000_0000, P, PROT_READ) == errno.ENOMEM
    assert errno_of(s.protect, a + 1, P, PROT_READ) == errno.EINVAL
    assert errno_of(s.protect, a, P, 0x80) == errno.EINVAL
    assert errno_of(s.protect, a, P, PROT_GROWSDOWN | PROT_READ) == errno.EINVAL
    assert s.regions == before                      # nothing applied, unlike Linux
    s.protect(a, 0, 0x80)                           # length 0: success before prot check
    s.protect(0x1000_0000, 0, PROT_READ)


def test_mprotect_growsdown_extends_to_the_region_start() -> None:
    s = AddressSpace()
    a = s.map(0x3000_0000, 8 * P, RW, ANON_PRIV | MAP_GROWSDOWN | MAP_FIXED).addr
    s.protect(a + 4 * P, P, PROT_READ | PROT_EXEC | PROT_GROWSDOWN)
    assert spans(s) == [(a, a + 5 * P, PROT_READ | PROT_EXEC), (a + 5 * P, a + 8 * P, RW)]


# --- mremap -------------------------------------------------------------------------


def test_mremap_shrink_and_grow_in_place() -> None:
    s = AddressSpace()
    a = 0x2000_0000
    s.map(a, 4 * P, RW, ANON_PRIV | MAP_FIXED)
    res = s.remap(a, 4 * P, 2 * P, may_move=False)
    assert res.addr == a and [(r.start, r.length) for r in res.removed] == [(a + 2 * P, 2 * P)]
    assert spans(s) == [(a, a + 2 * P, RW)]
    res = s.remap(a, 2 * P, 6 * P, may_move=False)
    assert res.addr == a and res.removed == [] and spans(s) == [(a, a + 6 * P, RW)]
    assert s.remap(a, 6 * P, 6 * P, may_move=False).addr == a


def test_mremap_grows_in_place_only_at_the_region_end() -> None:
    s = AddressSpace()
    a = 0x2000_0000
    s.map(a, 4 * P, RW, ANON_PRIV | MAP_FIXED)
    assert errno_of(s.remap, a, 2 * P, 3 * P, False) == errno.ENOMEM   # not at the end
    s.map(a + 5 * P, P, PROT_READ, ANON_PRIV | MAP_FIXED)
    assert errno_of(s.remap, a, 4 * P, 6 * P, False) == errno.ENOMEM   # next region in the way
    s.remap(a, 4 * P, 5 * P, False)                                   # exactly fits
    assert spans(s) == [(a, a + 5 * P, RW), (a + 5 * P, a + 6 * P, PROT_READ)]


def test_mremap_maymove_moves_the_range_and_its_backing_offset() -> None:
    s = AddressSpace()
    a = 0x2000_0000
    s.map(a, 4 * P, PROT_READ, MAP_PRIVATE | MAP_FIXED, LIB, offset=0x4000)
    s.map(a + 4 * P, P, RW, ANON_PRIV | MAP_FIXED)
    res = s.remap(a + P, 3 * P, 8 * P, may_move=True)
    assert res.addr == BASE - 8 * P and res.removed == []
    moved = s.find(res.addr)
    assert (moved.start, moved.length, moved.backing.offset) == (res.addr, 8 * P, 0x5000)
    assert spans(s)[:2] == [(a, a + P, PROT_READ), (a + 4 * P, a + 5 * P, RW)]
    assert_well_formed(s)


def test_mremap_fixed() -> None:
    s = AddressSpace()
    a, t = 0x2000_0000, 0x3000_0000
    s.map(a, 4 * P, RW, ANON_PRIV | MAP_FIXED)
    s.map(t, 8 * P, PROT_READ, ANON_PRIV | MAP_FIXED)
    res = s.remap(a, 4 * P, 2 * P, may_move=True, fixed_addr=t + P)
    assert res.addr == t + P
    assert sorted((r.start, r.length) for r in res.removed) == [(a + 2 * P, 2 * P), (t + P, 2 * P)]
    assert spans(s) == [(t, t + P, PROT_READ), (t + P, t + 3 * P, RW),
                        (t + 3 * P, t + 8 * P, PROT_READ)]


def test_mremap_errnos_leave_the_record_alone() -> None:
    s = AddressSpace()
    a = 0x2000_0000
    s.map(a, 2 * P, RW, ANON_PRIV | MAP_FIXED)
    s.map(a + 2 * P, 2 * P, PROT_READ, ANON_PRIV | MAP_FIXED)
    before = s.regions
    assert errno_of(s.remap, a + 1, P, 2 * P, True) == errno.EINVAL
    assert errno_of(s.remap, a, P, 0, True) == errno.EINVAL
    assert errno_of(s.remap, a, P, P, False, 0x3000_0000) == errno.EINVAL  # FIXED w/o MAYMOVE
    assert errno_of(s.remap, a, 2 * P, 2 * P, True, a + P) == errno.EINVAL  # overlap
    assert errno_of(s.remap, a, P, P, True, 0x3000_0001) == errno.EINVAL
    assert errno_of(s.remap, 0x1000_0000, P, P, True) == errno.EFAULT    # nothing mapped
    assert errno_of(s.remap, 0x1000_0000, 2 * P, P, False) == errno.EFAULT
    assert errno_of(s.remap, a, 4 * P, 8 * P, True) == errno.EFAULT      # spans two regions
    assert errno_of(s.remap, a, 4 * P, 3 * P, True, 0x3000_0000) == errno.EFAULT
    assert errno_of(s.remap, a, 0, P, True) == errno.EINVAL              # old_len 0, private
    assert s.regions == before


def test_mremap_shrink_may_run_past_the_mapping() -> None:
    # Linux 6.x: a plain shrink only needs old_addr mapped; it unmaps the tail
    s = AddressSpace()
    a = 0x2000_0000
    s.map(a, 2 * P, RW, ANON_PRIV | MAP_FIXED)
    s.map(a + 2 * P, 2 * P, PROT_READ, ANON_PRIV | MAP_FIXED)
    s.map(a + 6 * P, 2 * P, RW, ANON_PRIV | MAP_FIXED)
    assert s.remap(a, 4 * P, 4 * P, may_move=False).addr == a and len(s) == 3
    res = s.remap(a, 8 * P, P, may_move=False)
    assert res.addr == a and spans(s) == [(a, a + P, RW)]
    assert [(r.start, r.length) for r in res.removed] == [
        (a + P, P), (a + 2 * P, 2 * P), (a + 6 * P, 2 * P)]


def test_mremap_fixed_pure_move_may_span_several_mappings_and_holes() -> None:
    s = AddressSpace()
    a, t = 0x2000_0000, 0x3000_0000
    s.map(a, P, RW, ANON_PRIV | MAP_FIXED)
    s.map(a + P, 2 * P, PROT_READ, MAP_PRIVATE | MAP_FIXED, LIB, offset=4 * P)
    s.map(a + 5 * P, P, RW, ANON_PRIV | MAP_FIXED)
    assert errno_of(s.remap, a, 6 * P, 7 * P, True, t) == errno.EFAULT   # resize: one vma only
    s.map(t + 3 * P, 2 * P, PROT_EXEC, ANON_PRIV | MAP_FIXED)         # opposite the hole
    s.map(t + 5 * P, P, PROT_EXEC, ANON_PRIV | MAP_FIXED)
    res = s.remap(a, 6 * P, 6 * P, True, t)
    assert res.addr == t and [(r.start, r.length) for r in res.removed] == [(t + 5 * P, P)]
    assert s.find(t + 3 * P).prot == PROT_EXEC                        # left alone
    s.unmap(t + 3 * P, 2 * P)
    assert [(r.start, r.end, r.prot, r.backing.offset) for r in s] == [
        (t, t + P, RW, 0), (t + P, t + 3 * P, PROT_READ, 4 * P), (t + 5 * P, t + 6 * P, RW, 0)]


def test_mremap_old_len_zero_duplicates_a_shared_mapping() -> None:
    s = AddressSpace()
    r = s.map(0, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS).region
    assert errno_of(s.remap, r.start, 0, P, False) == errno.ENOMEM
    res = s.remap(r.start + P, 0, P, may_move=True)
    dup = s.find(res.addr)
    assert res.addr != r.start and s.find(r.start) is not None
    assert dup.backing == r.backing.at(P)


# --- brk ------------------------------------------------------------------------------


def test_brk_query_grow_shrink() -> None:
    s = AddressSpace(heap_start=0x5555_0000_0000)
    h = s.heap_start
    assert s.brk(0) == h and len(s) == 0
    assert s.brk(h + 4096) == h + 4096               # exactly 4096 further
    assert spans(s) == [(h, h + P, RW)] and s.regions[0].name == "[heap]"
    assert s.brk(h + 4096 + 10) == h + 4106          # unaligned break, region rounds up
    assert spans(s) == [(h, h + 2 * P, RW)]
    assert s.brk(0) == h + 4106
    assert s.brk(h + 5 * P) == h + 5 * P and spans(s) == [(h, h + 5 * P, RW)]
    assert s.brk(h + P) == h + P and spans(s) == [(h, h + P, RW)]
    assert s.brk(h) == h and len(s) == 0
    assert s.brk(h - P) == h                          # below the start: refused


def test_brk_refused_keeps_the_old_break() -> None:
    s = AddressSpace(heap_start=0x5555_0000_0000, data_limit=8 * P)
    h = s.heap_start
    assert s.brk(h + 8 * P) == h + 8 * P
    assert s.brk(h + 9 * P) == h + 8 * P              # RLIMIT_DATA
    s.brk(h + P)
    s.map(h + 4 * P, P, PROT_READ, ANON_PRIV | MAP_FIXED)
    assert s.brk(h + 3 * P) == h + 3 * P             # leaves one free page before it
    assert s.brk(h + 3 * P + 1) == h + 3 * P          # would touch the guard page: refused
    assert spans(s) == [(h, h + 3 * P, RW), (h + 4 * P, h + 5 * P, PROT_READ)]


def test_heap_does_not_merge_with_an_adjacent_anonymous_mapping() -> None:
    s = AddressSpace(heap_start=0x5555_0000_0000)
    h = s.heap_start
    s.brk(h + P)
    s.map(h - P, P, RW, ANON_PRIV | MAP_FIXED)
    assert len(s) == 2 and s.find(h).name == "[heap]"


# --- fork copy and /proc/PID/maps ------------------------------------------------------------


def test_copy_is_independent() -> None:
    s = AddressSpace()
    a = s.map(0, 4 * P, RW, ANON_PRIV).addr
    s.brk(s.heap_start + P)
    c = s.copy()
    assert c.regions == s.regions and c.brk_value == s.brk_value
    c.unmap(a, P)
    c.brk(c.heap_start + 3 * P)
    assert s.find(a) is not None and s.brk(0) == s.heap_start + P
    assert c.find(a) is None and c.brk(0) == c.heap_start + 3 * P



def test_copy_has_every_field_of_a_new_record() -> None:
    # the copy is built field by field (not copy.copy): a field __init__ gains
    # must be copied too, with the parent's value
    s = AddressSpace(mmap_base=0x7000_0000_0000, heap_start=0x5000_0000, data_limit=1 << 30,
                     max_map_count=100)
    s.brk(s.heap_start + 2 * P)
    c = s.copy()
    fields = list(vars(AddressSpace()))
    assert list(vars(c)) == fields
    for name in fields:
        assert getattr(c, name) == getattr(s, name), name
    for name in ("_regions", "_starts", "_ends", "_gstarts"):
        assert getattr(c, name) is not getattr(s, name), name

def test_format_maps_matches_linux_layout() -> None:
    s = AddressSpace(heap_start=0x5555_5555_9000)
    s.brk(0x5555_5557_a000)
    s.map(0x7FFF_F7DC_3000, 0x28000, PROT_READ, MAP_PRIVATE | MAP_FIXED, LIB)
    s.map(0x7FFF_F7FC_1000, 0x4000, PROT_READ, ANON_PRIV | MAP_FIXED, name="[vvar]")
    s.map(0x7FFF_F7FB_0000, P, RW, ANON_PRIV | MAP_FIXED)
    text = s.format_maps()
    assert text.splitlines() == [
        ("555555559000-55555557a000 rw-p 00000000 00:00 0"
         "                          [heap]"),
        ("7ffff7dc3000-7ffff7deb000 r--p 00000000 00:2f 7"
         "                          /lib/libc.so.6"),
        "7ffff7fb0000-7ffff7fb1000 rw-p 00000000 00:00 0 ",
        ("7ffff7fc1000-7ffff7fc5000 r--p 00000000 00:00 0"
         "                          [vvar]"),
    ]
    entries = parse_maps(text)
    assert [(e.start, e.end, e.perms, e.name) for e in entries] == [
        (r.start, r.end, r.perms, r.label) for r in s]


def test_format_maps_of_shared_anonymous_memory() -> None:
    s = AddressSpace()
    r = s.map(0, P, RW, MAP_SHARED | MAP_ANONYMOUS).region
    line = s.format_maps().splitlines()[0]
    assert line.startswith(f"{r.start:08x}-{r.end:08x} rw-s 00000000 00:01 {r.backing.key} ")
    assert line.endswith(" /dev/zero (deleted)") and line.index("/dev") == 73


# --- a model check: random fixed maps, unmaps and mprotects ------------------------------------

WINDOW = 0x4000_0000
PAGES = 8
FILES = {"f": FileBacking("f", path="/f"), "g": FileBacking("g", path="/g")}


def canonical(model: dict[int, tuple]) -> list[tuple]:
    """Maximal runs of pages with equal attributes and continuous offsets."""
    runs: list[list] = []
    for page in sorted(model):
        prot, kind, off, acc = model[page]
        if runs:
            start, end, p, k, o, a = runs[-1]
            if end == page and (p, k, a) == (prot, kind, acc) and (kind == "anon" or
                                                                   o + (end - start) == off):
                runs[-1][1] = page + P
                continue
        runs.append([page, page + P, prot, kind, off, acc])
    return [tuple(r) for r in runs]


def record(space: AddressSpace) -> list[tuple]:
    out = []
    for r in space:
        kind = r.backing.vnode if isinstance(r.backing, FileBacking) else "anon"
        out.append((r.start, r.end, r.prot, kind, r.backing.offset, r.accounted))
    return out


op = st.one_of(
    st.tuples(st.just("map"), st.integers(0, PAGES - 1), st.integers(1, 4),
              st.sampled_from([PROT_READ, RW, PROT_NONE]), st.sampled_from(["anon", "f", "g"]),
              st.integers(0, 3)),
    st.tuples(st.just("unmap"), st.integers(0, PAGES - 1), st.integers(1, 6)),
    st.tuples(st.just("protect"), st.integers(0, PAGES - 1), st.integers(1, 6),
              st.sampled_from([PROT_READ, RW, PROT_NONE])),
    st.tuples(st.just("remap"), st.integers(0, PAGES - 1), st.integers(1, 4),
              st.integers(1, 6), st.booleans()),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=10, max_size=50))
def test_random_operations_match_a_page_model(ops: list[tuple]) -> None:
    s = AddressSpace()
    model: dict[int, tuple] = {}
    for o in ops:
        kind, first, n = o[0], WINDOW + o[1] * P, o[2] * P
        if kind == "map":
            prot, what, off = o[3], o[4], o[5] * P
            if what == "anon":
                s.map(first, n, prot, ANON_PRIV | MAP_FIXED)
            else:
                s.map(first, n, prot, MAP_PRIVATE | MAP_FIXED, FILES[what], offset=off)
            for i in range(0, n, P):
                model[first + i] = (prot, what, 0 if what == "anon" else off + i,
                                    bool(prot & PROT_WRITE))
        elif kind == "unmap":
            s.unmap(first, n)
            for i in range(0, n, P):
                model.pop(first + i, None)
        elif kind == "protect":
            pages = range(first, first + n, P)
            if all(p in model for p in pages):
                s.protect(first, n, o[3])
                for p in pages:
                    _, what, off, acc = model[p]
                    writable = bool(o[3] & PROT_WRITE)
                    model[p] = (o[3], what, off,
                                writable or (acc and what != "anon"))
            else:
                assert errno_of(s.protect, first, n, o[3]) == errno.ENOMEM
        else:
            new_n, may_move = o[3] * P, o[4]
            run = next((r for r in canonical(model) if r[0] <= first < r[1]), None)
            if run is not None and new_n <= n:     # plain shrink: just unmaps the tail
                assert s.remap(first, n, new_n, may_move).addr == first
                for i in range(new_n, n, P):
                    model.pop(first + i, None)
            elif run is None or first + n > run[1]:
                assert errno_of(s.remap, first, n, new_n, may_move) == errno.EFAULT
            else:
                try:
                    res = s.remap(first, n, new_n, may_move)
                except MmError as exc:
                    assert exc.errno == errno.ENOMEM and not may_move
                    continue
                _, _, prot, what, off0, acc = run
                for i in range(0, n, P):
                    del model[first + i]
                for i in range(0, new_n, P):
                    off = 0 if what == "anon" else off0 + (first - run[0]) + i
                    model[res.addr + i] = (prot, what, off, acc)
        assert record(s) == canonical(model)
        assert_well_formed(s)


def test_region_helpers() -> None:
    r = Region(0x10000, 3 * P, RW, MAP_PRIVATE, LIB.at(P))
    assert r.end == 0x13000 and r.pages == 3 and r.perms == "rw-p" and r.label == "/lib/libc.so.6"
    piece = r.slice(0x11000, 0x12000)
    assert piece.backing.offset == 2 * P and r.contains(0x12FFF) and not r.contains(0x13000)
    assert Region(0, P, 0, ANON_PRIV).label == ""


# --- the one-region fast paths against the general carve-and-merge -------------------------


class _General(AddressSpace):
    """The record with the fast paths turned off: every insert and unmap goes
    through ``_carve`` and ``_replace`` (merging the whole neighbourhood)."""

    def insert(self, region: Region) -> None:
        i, j = self._span(region.start, region.end)
        assert i == j
        self._replace(i, i, [region])

    def _unmap_range(self, start: int, end: int) -> list[Region]:
        if start >= end:
            return []
        i, j = self._span(start, end)
        if i == j:
            return []
        left, removed, right = self._carve(i, j, start, end)
        left += right
        self._replace(i, j, left)
        return removed


def _outcome(fn: object, *args: int) -> object:
    try:
        return fn(*args)  # type: ignore[operator]
    except MmError as exc:
        return ("error", exc.errno)


@given(st.lists(st.tuples(st.sampled_from(("map", "fixed", "unmap", "protect", "remap")),
                          st.integers(0, 31), st.integers(1, 8),
                          st.sampled_from((PROT_READ, PROT_READ | PROT_WRITE)),
                          st.sampled_from(("anon", "file", "stack"))),
                min_size=1, max_size=40))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fast_insert_and_unmap_match_the_general_path(ops: list) -> None:
    """mmap into a free range (``insert``), a munmap within one region (whole
    or one end) and mremap's move keep the record, the parallel lists and the answers exactly as
    the general path does, merges with the neighbours included."""
    base = DEFAULT_MMAP_BASE - 64 * PAGE_SIZE
    fast, slow = AddressSpace(), _General()
    vnode = ("vfs", 1, 7)
    for what, page, pages, prot, kind in ops:
        addr, length = base + page * PAGE_SIZE, pages * PAGE_SIZE
        if kind == "file":
            backing: object = FileBacking(vnode, offset=page * PAGE_SIZE)
            flags = MAP_PRIVATE | (MAP_FIXED if what == "fixed" else 0)
        else:
            backing = ANON
            flags = MAP_PRIVATE | MAP_ANONYMOUS | (MAP_GROWSDOWN if kind == "stack" else 0) \
                | (MAP_FIXED if what == "fixed" else 0)
        for space in (fast, slow):
            if what in ("map", "fixed"):
                got = _outcome(lambda: space.map(0 if what == "map" else addr, length, prot,
                                                 flags, backing,  # type: ignore[arg-type]
                                                 page * PAGE_SIZE if kind == "file" else 0))
            elif what == "unmap":
                got = _outcome(space.unmap, addr, length)
            elif what == "remap":           # grow by ``pages``: in place or moved
                got = _outcome(space.remap, addr, PAGE_SIZE, length + PAGE_SIZE, True)
            else:
                got = _outcome(space.protect, addr, length, prot)
            if space is fast:
                want = got
        assert got == want
        assert fast.regions == slow.regions
        assert (fast._starts, fast._ends, fast._gstarts) == (
            slow._starts, slow._ends, slow._gstarts)
        assert fast._starts == [r.start for r in fast.regions]
