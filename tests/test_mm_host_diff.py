"""Differential test: the same random mmap/munmap/mprotect/mremap calls made on
the host kernel (through ctypes, in a child process) and on an AddressSpace
record must leave the same /proc/self/maps lines in a private window.

Run directly (``python tests/test_mm_host_diff.py SEED...``) to see a mismatch
in detail.  Needs Linux >= 6.17 on x86-64 (multi-mapping MREMAP_FIXED moves).
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import random
import subprocess
import sys
import tempfile

import pytest

from xinim_host.mm.errors import MmError
from xinim_host.lib.vm_abi import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from xinim_host.mm.regions import AddressSpace, FileBacking, parse_maps

P = PAGE_SIZE
WINDOW = 0x6000_0000_0000
PAGES = 24
SPAN = 3 * PAGES * P          # ops touch [WINDOW, WINDOW + 2*PAGES), moves go up to 3*PAGES
SYS_MMAP, SYS_MPROTECT, SYS_MUNMAP, SYS_MREMAP = 9, 10, 11, 25


def _kernel_ok() -> bool:
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return False
    major, minor = (int(x) for x in platform.release().split(".")[:2])
    return (major, minor) >= (6, 17)


def _syscall():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def call(nr: int, *args: int) -> int:
        r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a & (2**64 - 1)) for a in args])
        return r if r != -1 else -ctypes.get_errno()
    return call


def _window(entries) -> list[tuple]:
    return [e for e in entries if WINDOW <= e[0] < WINDOW + SPAN]


def run_seed(seed: int, steps: int = 60) -> str | None:
    """Play one random sequence on both; returns a description of the first
    difference, or None.  Must run in a process of its own (it maps MAP_FIXED)."""
    sc = _syscall()
    fd, path = tempfile.mkstemp()
    os.unlink(path)
    os.ftruncate(fd, 64 * P)
    inode = os.fstat(fd).st_ino
    file = FileBacking(inode, path=path, inode=inode)
    space = AddressSpace()
    rng = random.Random(seed)

    def host() -> list[tuple]:
        with open("/proc/self/maps") as f:
            return _window((e.start, e.end, e.perms, e.offset if e.inode else 0)
                           for e in parse_maps(f.read()))

    def record() -> list[tuple]:
        return _window((r.start, r.end, r.perms,
                        r.backing.offset if isinstance(r.backing, FileBacking) else 0)
                       for r in space)

    def mm(fn, *args) -> int:
        try:
            res = fn(*args)
        except MmError as exc:
            return -exc.errno
        return res if isinstance(res, int) else getattr(res, "addr", 0)

    for step in range(steps):
        kind = rng.choice(["map", "fmap", "smap", "unmap", "prot", "remap", "fremap"])
        a, n = WINDOW + rng.randrange(PAGES) * P, rng.randrange(1, 5) * P
        prot = rng.choice([PROT_READ, PROT_READ | PROT_WRITE, PROT_NONE])
        off = rng.randrange(8) * P
        if kind == "map":
            flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
            h, m = sc(SYS_MMAP, a, n, prot, flags, -1, 0), mm(space.map, a, n, prot, flags)
        elif kind in ("fmap", "smap"):
            flags = (MAP_PRIVATE if kind == "fmap" else MAP_SHARED) | MAP_FIXED
            h = sc(SYS_MMAP, a, n, prot, flags, fd, off)
            m = mm(space.map, a, n, prot, flags, file, off)
        elif kind == "unmap":
            h, m = sc(SYS_MUNMAP, a, n), mm(space.unmap, a, n)
        elif kind == "prot":
            h, m = sc(SYS_MPROTECT, a, n, prot), mm(space.protect, a, n, prot)
            if h == m == -errno.ENOMEM:
                # Linux changed the mapped prefix before failing; MM refuses all
                # on purpose.  Apply the prefix to the record to keep comparing.
                cur = a
                while cur < a + n and (r := space.find(cur)) is not None:
                    cur = min(r.end, a + n)
                if cur > a:
                    space.protect(a, cur - a, prot)
        elif kind == "remap":         # no MAYMOVE: stays in the window
            new = rng.randrange(1, 6) * P
            h, m = sc(SYS_MREMAP, a, n, new, 0), mm(space.remap, a, n, new, False)
        else:
            new = rng.choice([n, rng.randrange(1, 6) * P])
            t = WINDOW + (PAGES + rng.randrange(PAGES)) * P
            h = sc(SYS_MREMAP, a, n, new, 3, t)
            m = mm(space.remap, a, n, new, True, t)
        if h != m or host() != record():
            return (f"seed {seed} step {step}: {kind} {a:#x} {n // P} pages prot {prot}: "
                    f"host {h} mm {m}\n host {host()}\n mm   {record()}")
    return None


@pytest.mark.skipif(not _kernel_ok(), reason="needs Linux >= 6.17 on x86-64")
def test_record_matches_the_host_kernel() -> None:
    proc = subprocess.run([sys.executable, __file__, *map(str, range(1, 41))],
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode == 3:
        pytest.skip(proc.stdout.strip())
    assert proc.returncode == 0, proc.stdout + proc.stderr


def main(argv: list[str]) -> int:
    sc = _syscall()
    # the window must be free in this process, or the comparison is meaningless
    probe = sc(SYS_MMAP, WINDOW, SPAN, PROT_NONE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
    if probe != WINDOW:
        print(f"window {WINDOW:#x} not free here ({probe})")
        return 3
    sc(SYS_MUNMAP, WINDOW, SPAN)
    for seed in map(int, argv):
        sc(SYS_MUNMAP, WINDOW, SPAN)
        diff = run_seed(seed)
        if diff:
            print(diff)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
