"""Physical page frames: a binary buddy allocator with per-block reference counts.

Frames are numbered 0..total_pages-1 (page ``n`` is physical bytes
``n*PAGE_SIZE``..).  A block of order ``k`` is ``2**k`` frames aligned to
``2**k``; its buddy is ``frame ^ 2**k``.  Free blocks live in one ``set`` per
order, so alloc is "first non-empty order >= k, split down" and free is
"merge with the buddy while it is free": both O(MAX_ORDER) = O(log n) set
operations.

Every allocated block carries a reference count (1 after :meth:`alloc`).
Copy-on-write sharing after fork takes extra references with :meth:`share`;
:meth:`release` drops one and frees the block at zero.  :meth:`free` is the
explicit "I own it alone" free and refuses a block that is still shared.

Misuse -- double free, a frame that was never handed out, a wrong order -- is a
bug of the caller and raises ``ValueError``; running out of frames is a
legitimate answer and raises :class:`OutOfFrames` (errno ENOMEM).
"""
from __future__ import annotations

from .errors import OutOfFrames
from ..lib.vm_abi import PAGE_SIZE

DEFAULT_PHYS_SIZE = 256 << 20
DEFAULT_MAX_ORDER = 10      # 4 MiB blocks, Linux's MAX_PAGE_ORDER


class FrameAllocator:
    """Buddy allocator of ``phys_size // PAGE_SIZE`` page frames, orders 0..max_order."""

    def __init__(self, phys_size: int = DEFAULT_PHYS_SIZE,
                 max_order: int = DEFAULT_MAX_ORDER) -> None:
        if phys_size < PAGE_SIZE:
            raise ValueError(f"physical size {phys_size} is below one page")
        if not 0 <= max_order <= 40:
            raise ValueError(f"max_order {max_order} out of range")
        self.max_order = max_order
        self.total_pages = phys_size // PAGE_SIZE
        self._free: list[set[int]] = [set() for _ in range(max_order + 1)]
        self._order: dict[int, int] = {}   # allocated block head -> its order
        self._refs: dict[int, int] = {}    # allocated block head -> reference count
        self._free_pages = self.total_pages
        # Carve the (maybe not power-of-two) range into maximal aligned blocks.
        frame = 0
        while frame < self.total_pages:
            k = max_order
            while frame & ((1 << k) - 1) or frame + (1 << k) > self.total_pages:
                k -= 1
            self._free[k].add(frame)
            frame += 1 << k

    # --- counters ------------------------------------------------------------

    @property
    def free_pages(self) -> int:
        return self._free_pages

    @property
    def used_pages(self) -> int:
        return self.total_pages - self._free_pages

    @property
    def allocated_blocks(self) -> int:
        return len(self._order)

    def free_blocks(self, order: int) -> frozenset[int]:
        """A snapshot of the free block heads of ``order`` (for tests and stats)."""
        return frozenset(self._free[order])

    def refcount(self, frame: int) -> int:
        """References to the allocated block headed by ``frame``; 0 if not allocated."""
        return self._refs.get(frame, 0)

    # --- allocation ----------------------------------------------------------

    def alloc(self, order: int = 0) -> int:
        """Allocate a block of ``2**order`` frames; returns its first frame number."""
        if not 0 <= order <= self.max_order:
            raise ValueError(f"order {order} outside 0..{self.max_order}")
        for k in range(order, self.max_order + 1):
            if self._free[k]:
                break
        else:
            raise OutOfFrames(f"no free block of order {order}")
        frame = self._free[k].pop()
        while k > order:            # split: keep the low half, free the high half
            k -= 1
            self._free[k].add(frame + (1 << k))
        self._order[frame] = order
        self._refs[frame] = 1
        self._free_pages -= 1 << order
        return frame

    def alloc_pages(self, count: int) -> list[int]:
        """``count`` single frames, all or none (order-0 requests cannot fail while
        any frame is free, so checking the counter first makes this atomic)."""
        if count < 0:
            raise ValueError("negative page count")
        if count > self._free_pages:
            raise OutOfFrames(f"{count} frames wanted, {self._free_pages} free")
        return [self.alloc(0) for _ in range(count)]

    def free(self, frame: int, order: int) -> None:
        """Free the block ``frame`` of ``order``, which the caller owns alone."""
        self._owned(frame)
        if self._order[frame] != order:
            raise ValueError(f"frame {frame} was allocated with order "
                             f"{self._order[frame]}, freed with order {order}")
        if self._refs[frame] != 1:
            raise ValueError(f"frame {frame} is still shared ({self._refs[frame]} references)")
        self._free_block(frame)

    # --- copy-on-write references ---------------------------------------------

    def share(self, frame: int) -> int:
        """One more reference to the allocated block ``frame``; returns the new count."""
        self._owned(frame)
        self._refs[frame] += 1
        return self._refs[frame]

    def release(self, frame: int) -> bool:
        """Drop one reference; frees the block at zero.  True when it was freed."""
        self._owned(frame)
        refs = self._refs[frame] - 1
        if refs:
            self._refs[frame] = refs
            return False
        self._free_block(frame)
        return True

    # --- internals -------------------------------------------------------------

    def _owned(self, frame: int) -> None:
        if frame not in self._order:
            where = ("outside the pool" if not 0 <= frame < self.total_pages
                     else "not an allocated block (double free or foreign frame)")
            raise ValueError(f"frame {frame}: {where}")

    def _free_block(self, frame: int) -> None:
        order = self._order.pop(frame)
        del self._refs[frame]
        self._free_pages += 1 << order
        while order < self.max_order:   # coalesce with the buddy while it is free
            buddy = frame ^ (1 << order)
            peers = self._free[order]
            if buddy not in peers:
                break
            peers.remove(buddy)
            frame &= ~(1 << order)
            order += 1
        self._free[order].add(frame)

    def check_invariants(self) -> None:
        """Raise ValueError unless the free lists and the allocations tile the pool
        exactly: aligned, disjoint, fully coalesced, and counted right."""
        spans: list[tuple[int, int, str]] = []
        free_total = 0
        for order, heads in enumerate(self._free):
            for head in heads:
                if head & ((1 << order) - 1):
                    raise ValueError(f"free block {head} misaligned for order {order}")
                if order < self.max_order and head ^ (1 << order) in heads:
                    raise ValueError(f"free buddies {head} and {head ^ (1 << order)} "
                                     f"of order {order} not coalesced")
                spans.append((head, head + (1 << order), "free"))
                free_total += 1 << order
        for head, order in self._order.items():
            if self._refs.get(head, 0) < 1:
                raise ValueError(f"allocated block {head} has no references")
            spans.append((head, head + (1 << order), "used"))
        if self._refs.keys() != self._order.keys():
            raise ValueError("reference table out of step with the allocations")
        spans.sort()
        cursor = 0
        for start, end, _ in spans:
            if start != cursor:
                raise ValueError(f"frames {min(start, cursor)}..{max(start, cursor)} "
                                 f"{'overlap' if start < cursor else 'are lost'}")
            cursor = end
        if cursor != self.total_pages:
            raise ValueError(f"pool covers {cursor} of {self.total_pages} frames")
        if free_total != self._free_pages:
            raise ValueError(f"free counter {self._free_pages} != free lists {free_total}")
