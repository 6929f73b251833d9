"""Tracee memory access, exercised on our own process (same syscalls)."""
from __future__ import annotations

import ctypes
import errno
import mmap
import os

import pytest

from xinim_host.intercept import memory
from xinim_host.intercept.memory import PAGE_SIZE, TraceeFault

ME = os.getpid()
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


@pytest.fixture
def two_pages():
    """Two pages: the first read-write, the second PROT_NONE."""
    addr = libc.mmap(None, 2 * PAGE_SIZE, mmap.PROT_READ | mmap.PROT_WRITE,
                     mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    assert libc.mprotect(addr + PAGE_SIZE, PAGE_SIZE, 0) == 0
    yield addr
    libc.munmap(addr, 2 * PAGE_SIZE)


def test_read_and_write_roundtrip() -> None:
    buf = ctypes.create_string_buffer(b"0123456789", 16)
    assert memory.read(ME, ctypes.addressof(buf), 10) == b"0123456789"
    memory.write(ME, ctypes.addressof(buf) + 2, b"ab", force=False)
    assert buf.value == b"01ab456789"
    into = bytearray(4)
    memory.read_into(ME, ctypes.addressof(buf), into)
    assert into == b"01ab"
    assert memory.read(ME, ctypes.addressof(buf), 0) == b""


@pytest.mark.parametrize("addr", [0, 1, 0xFFFF_8000_0000_0000, (1 << 64) - 4, -5])
def test_bad_addresses_give_efault(addr: int) -> None:
    with pytest.raises(TraceeFault) as ei:
        memory.read(ME, addr, 8)
    assert ei.value.errno == errno.EFAULT and isinstance(ei.value, OSError)
    with pytest.raises(TraceeFault):
        memory.read_cstring(ME, addr)
    with pytest.raises(TraceeFault):
        memory.write(ME, addr, b"x")


def test_read_crossing_into_inaccessible_page(two_pages: int) -> None:
    end = two_pages + PAGE_SIZE
    assert memory.read(ME, end - 4, 4) == b"\0" * 4
    with pytest.raises(TraceeFault):
        memory.read(ME, end - 4, 8)


def test_cstring_at_page_end(two_pages: int) -> None:
    end = two_pages + PAGE_SIZE
    ctypes.memmove(end - 6, b"path\0", 5)
    assert memory.read_cstring(ME, end - 6) == b"path"  # NUL before the bad page: fine
    ctypes.memmove(end - 4, b"abcd", 4)
    with pytest.raises(TraceeFault):  # runs into the PROT_NONE page without a NUL
        memory.read_cstring(ME, end - 4)


def test_cstring_limit() -> None:
    ok = ctypes.create_string_buffer(b"a" * 4095)  # + NUL = 4096 bytes
    assert memory.read_cstring(ME, ctypes.addressof(ok)) == b"a" * 4095
    long = ctypes.create_string_buffer(b"a" * 4096)
    with pytest.raises(OSError) as ei:
        memory.read_cstring(ME, ctypes.addressof(long))
    assert ei.value.errno == errno.ENAMETOOLONG
    assert memory.read_cstring(ME, ctypes.addressof(long), limit=5000) == b"a" * 4096


def test_cstring_beyond_the_first_piece() -> None:
    """A string longer than read_cstring's first short read, or crossing into the
    next page, is read whole; results are copies (one scratch buffer serves all)."""
    rw = mmap.PROT_READ | mmap.PROT_WRITE
    pages = libc.mmap(None, 2 * PAGE_SIZE, rw, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    try:
        across = pages + PAGE_SIZE - 100             # 100 bytes here, 600 on the next page
        ctypes.memmove(across, b"x" * 700 + b"\0", 701)
        inside = pages + 10
        ctypes.memmove(inside, b"y" * 300 + b"\0", 301)
        first = memory.read_cstring(ME, across)
        second = memory.read_cstring(ME, inside)
        head = memory.read(ME, across, 5)
        assert (first, second, head) == (b"x" * 700, b"y" * 300, b"xxxxx")
    finally:
        libc.munmap(pages, 2 * PAGE_SIZE)


def test_writes_of_every_size_and_kind() -> None:
    """Small bytes go through the scratch buffer; big ones and other buffer
    kinds through their own memory: the tracee sees the same bytes."""
    big = bytes(range(256)) * 1024                   # 256 KiB: past the scratch buffer
    buf = ctypes.create_string_buffer(len(big))
    at = ctypes.addressof(buf)
    memory.write(ME, at, big, force=False)
    assert buf.raw == big
    memory.write(ME, at, memoryview(b"mv" * 8), force=False)
    memory.write(ME, at + 16, bytearray(b"ba"), force=False)
    memory.write(ME, at + 18, b"by", force=False)
    assert buf.raw[:20] == b"mv" * 8 + b"baby"
    assert memory.read(ME, at + 20, len(big) - 20) == big[20:]   # a read past the scratch


def test_write_read_only_page_forced(two_pages: int) -> None:
    assert libc.mprotect(two_pages, PAGE_SIZE, mmap.PROT_READ) == 0
    with pytest.raises(TraceeFault):
        memory.write(ME, two_pages, b"ro", force=False)
    memory.write(ME, two_pages, b"ro")  # /proc/PID/mem (FOLL_FORCE)
    assert memory.read(ME, two_pages, 2) == b"ro"


def test_write_unmapped_forced_still_efault(two_pages: int) -> None:
    libc.munmap(two_pages + PAGE_SIZE, PAGE_SIZE)
    with pytest.raises(TraceeFault):
        memory.write(ME, two_pages + PAGE_SIZE - 1, b"xy")


def test_dead_process_is_not_efault() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    with pytest.raises(ProcessLookupError):
        memory.read(pid, 0x1000, 4)
