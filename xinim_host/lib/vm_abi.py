"""Numbers of the x86-64 Linux address-space layout and the mmap ABI that the
standard :mod:`mmap` module does not export (it has no MAP_FIXED, PROT_NONE...)."""
from __future__ import annotations

import mmap

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)

PROT_NONE = 0
PROT_READ = mmap.PROT_READ
PROT_WRITE = mmap.PROT_WRITE
PROT_EXEC = mmap.PROT_EXEC
PROT_SEM = 0x8                      # accepted by x86 mprotect, no effect
PROT_GROWSDOWN = 0x01000000
PROT_GROWSUP = 0x02000000
PROT_RWX = PROT_READ | PROT_WRITE | PROT_EXEC

MAP_SHARED = mmap.MAP_SHARED        # 0x01
MAP_PRIVATE = mmap.MAP_PRIVATE      # 0x02
MAP_SHARED_VALIDATE = 0x03
MAP_TYPE = 0x0F
MAP_FIXED = 0x10
MAP_ANONYMOUS = mmap.MAP_ANONYMOUS  # 0x20
MAP_32BIT = 0x40
MAP_GROWSDOWN = 0x0100
MAP_DENYWRITE = 0x0800
MAP_EXECUTABLE = 0x1000
MAP_LOCKED = 0x2000
MAP_NORESERVE = 0x4000
MAP_POPULATE = mmap.MAP_POPULATE    # 0x8000
MAP_NONBLOCK = 0x10000
MAP_STACK = 0x20000
MAP_HUGETLB = 0x40000
MAP_SYNC = 0x80000
MAP_FIXED_NOREPLACE = 0x100000
MAP_ABOVE4G = 0x80
MAP_UNINITIALIZED = 0x4000000
MAP_HUGE_MASK = 0x3F << 26
# Flags that MAP_SHARED_VALIDATE accepts on a file without mmap_supported_flags
# (Linux LEGACY_MAP_MASK); anything else -- MAP_SYNC, even MAP_FIXED_NOREPLACE --
# is EOPNOTSUPP there, as in do_mmap().
MAP_VALIDATE_MASK = (MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE
                     | MAP_EXECUTABLE | MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED
                     | MAP_NORESERVE | MAP_POPULATE | MAP_NONBLOCK | MAP_STACK
                     | MAP_HUGETLB | MAP_32BIT | MAP_ABOVE4G | MAP_HUGE_MASK)
# Flags kept in a Region besides the map type: lasting properties that Linux
# turns into vm_flags (MAP_STACK into VM_NOHUGEPAGE), so regions differing in
# them are not merged; the rest (FIXED, POPULATE, ...) only steer the call.
REGION_FLAGS = MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_NORESERVE | MAP_STACK | MAP_LOCKED

MREMAP_MAYMOVE = 1
MREMAP_FIXED = 2
MREMAP_DONTUNMAP = 4

# x86-64, 4-level paging: the top of user space is one page below 2**47.
TASK_SIZE = 0x7FFFFFFFF000
# Linux keeps at least 128 MiB between the stack top and mmap_base
# (arch/x86/mm/mmap.c MIN_GAP); with randomisation off that is the base.
STACK_GAP = 128 << 20
DEFAULT_MMAP_BASE = TASK_SIZE - STACK_GAP        # 0x7ffff7fff000, as with ASLR off
DEFAULT_MMAP_MIN_ADDR = 0x10000                  # vm.mmap_min_addr on most distros
DEFAULT_HEAP_START = 0x555555560000              # after a non-randomised PIE image
DEFAULT_MAX_MAP_COUNT = 65530                    # vm.max_map_count
STACK_GUARD_GAP = 256 * PAGE_SIZE                # kept free below MAP_GROWSDOWN regions


def page_up(n: int) -> int:
    """``n`` rounded up to a page boundary."""
    return (n + PAGE_SIZE - 1) & PAGE_MASK


def page_down(n: int) -> int:
    return n & PAGE_MASK


def is_aligned(n: int) -> bool:
    return n & (PAGE_SIZE - 1) == 0
