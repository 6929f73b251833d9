"""Tracee memory: process_vm_readv / process_vm_writev, /proc/PID/mem fallback.

Contract: a bad tracee pointer (unmapped, kernel address, wrapping range,
unreadable page) raises :class:`TraceeFault` whose errno is EFAULT, never
anything else, so the dispatcher can answer ``-e.errno``.  A dead tracee
raises ``ProcessLookupError`` (ESRCH); that is not the program's fault.
"""
from __future__ import annotations

import ctypes
import errno
import os

from . import _libc

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_ADDR_END = 1 << 64
_iovec = _libc.iovec
_readv = _libc.process_vm_readv
_writev = _libc.process_vm_writev
_byref = ctypes.byref
_addressof = ctypes.addressof
# The same two calls without argtypes (their conversion costs more than the
# copy of a small buffer): the pid and counts go as C ints, which libffi
# sign-extends into the argument registers; the iovecs as byref()s made once.
_readv_raw = _libc.process_vm_readv_raw
_writev_raw = _libc.process_vm_writev_raw


class TraceeFault(OSError):
    """A tracee address range is not accessible (errno is always EFAULT)."""

    def __init__(self, addr: int, length: int = 0) -> None:
        super().__init__(errno.EFAULT, f"Bad address {addr:#x} (+{length}) in tracee")
        self.addr = addr
        self.length = length


def _check_range(addr: int, n: int) -> None:
    if n < 0:
        raise ValueError("negative length")
    if addr < 0 or addr + n > _ADDR_END:
        raise TraceeFault(addr, n)


def _other_error(pid: int, addr: int, n: int) -> None:
    err = _libc.get_errno()
    if err in (errno.ESRCH, errno.EPERM, errno.ENOMEM):
        raise OSError(err, f"tracee {pid}: {os.strerror(err)}")
    # EFAULT, and EINVAL for absurd lengths: the tracee's bad pointer.
    raise TraceeFault(addr, n)


def read_into(pid: int, addr: int, buf: bytearray | memoryview | ctypes.Array) -> None:
    """Fill the writable buffer ``buf`` from tracee memory at ``addr``."""
    n = len(buf) if not isinstance(buf, ctypes.Array) else ctypes.sizeof(buf)
    if n == 0:
        return
    _check_range(addr, n)
    if isinstance(buf, ctypes.Array):
        base = _addressof(buf)
    else:
        base = _addressof((ctypes.c_char * n).from_buffer(buf))
    local = _iovec(base, n)
    remote = _iovec(addr, n)
    r = _readv(pid, _byref(local), 1, _byref(remote), 1, 0)
    if r != n:
        if r < 0:
            _other_error(pid, addr, n)
        raise TraceeFault(addr, n)


# Scratch memory for small copies and C strings: one buffer and its iovecs,
# reused -- every caller runs on the tracer (trio) thread, one copy at a time,
# and what is read is copied out of it before the function returns.
_STR_MAX = 128 * 1024   # MAX_ARG_STRLEN: the longest string execve takes
_SCRATCH = bytearray(_STR_MAX)
_scratch_c = (ctypes.c_char * _STR_MAX).from_buffer(_SCRATCH)   # pins its size
_scratch_addr = _addressof(_scratch_c)
_scratch_view = memoryview(_SCRATCH)
_local = _iovec(_scratch_addr, 0)
_remote = _iovec(0, 0)
_local_ref = _byref(_local)
_remote_ref = _byref(_remote)
_str_remote = (_iovec * (_STR_MAX // 4096 + 2))()   # one per page touched
# A C string's first read: this much (within its page) before reading the
# whole limit page by page; most paths end well inside it.
_STR_FIRST = 256


def read(pid: int, addr: int, n: int) -> bytes:
    """Read exactly ``n`` bytes; any inaccessible byte -> TraceeFault."""
    if n == 0:
        return b""
    _check_range(addr, n)
    if n <= _STR_MAX:
        _local.iov_len = n
        _remote.iov_base = addr
        _remote.iov_len = n
        r = _readv_raw(pid, _local_ref, 1, _remote_ref, 1, 0)
        if r != n:
            if r < 0:
                _other_error(pid, addr, n)
            raise TraceeFault(addr, n)
        return bytes(_scratch_view[:n])
    buf = ctypes.create_string_buffer(n)
    local = _iovec(_addressof(buf), n)
    remote = _iovec(addr, n)
    r = _readv(pid, _byref(local), 1, _byref(remote), 1, 0)
    if r != n:
        if r < 0:
            _other_error(pid, addr, n)
        raise TraceeFault(addr, n)
    return buf.raw


def read_cstring(pid: int, addr: int, limit: int = 4096) -> bytes:
    """NUL-terminated string at ``addr`` (without the NUL).

    ``limit`` counts the terminating NUL, like PATH_MAX: no NUL within
    ``limit`` bytes -> OSError(ENAMETOOLONG).  Reads page by page (one remote
    iovec per page, so a fault after the NUL does not matter).
    """
    if limit <= 0 or limit > _STR_MAX:
        raise ValueError("limit out of range")
    if addr <= 0 or addr >= _ADDR_END:
        raise TraceeFault(addr, 1)
    n = min(limit, _ADDR_END - addr)
    # First a short read that stays within addr's page: where the string ends
    # there (the usual case), that is the answer.  Anything else -- no NUL yet,
    # a fault -- is decided by the full read below, as if this one had not been.
    first = min(n, _STR_FIRST, PAGE_SIZE - addr % PAGE_SIZE)
    _local.iov_len = first
    _remote.iov_base = addr
    _remote.iov_len = first
    r = _readv_raw(pid, _local_ref, 1, _remote_ref, 1, 0)
    if r > 0:
        end = _SCRATCH.find(0, 0, r)
        if end >= 0:
            return bytes(_scratch_view[:end])
    # split [addr, addr+n) at page boundaries
    count = 0
    a, left = addr, n
    while left:
        chunk = min(PAGE_SIZE - (a % PAGE_SIZE), left)
        _str_remote[count].iov_base = a
        _str_remote[count].iov_len = chunk
        count += 1
        a += chunk
        left -= chunk
    _local.iov_len = n
    r = _readv(pid, _local_ref, 1, _str_remote, count, 0)
    if r < 0:
        _other_error(pid, addr, 1)
    end = _SCRATCH.find(0, 0, r) if r > 0 else -1
    if end >= 0:
        return bytes(_scratch_view[:end])
    if r < n:  # stopped at an inaccessible page before any NUL
        raise TraceeFault(addr, r + 1)
    raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))


def write(pid: int, addr: int, data: bytes | bytearray | memoryview, *, force: bool = True) -> None:
    """Write ``data`` into the tracee at ``addr``.

    ``force=True`` falls back to /proc/PID/mem (FOLL_FORCE) where the pages
    are mapped but read-only, e.g. filling a PROT_READ mapping for the MM.
    ``force=False`` behaves like the kernel's copy_to_user: a read-only
    user buffer gives EFAULT (use it to copy out syscall results).
    """
    n = len(data)
    if n == 0:
        return
    _check_range(addr, n)
    if n <= _STR_MAX and type(data) is bytes:
        # through the scratch buffer: a memcpy costs less than finding the
        # address of ``data``'s own bytes through ctypes
        _SCRATCH[:n] = data
        _local.iov_len = n
        _remote.iov_base = addr
        _remote.iov_len = n
        r = _writev_raw(pid, _local_ref, 1, _remote_ref, 1, 0)
        if r == n:
            return
        src = data
    else:
        src = data if isinstance(data, bytes) else bytes(data)
        local = _iovec(ctypes.cast(ctypes.c_char_p(src), ctypes.c_void_p).value, n)
        remote = _iovec(addr, n)
        r = _writev(pid, _byref(local), 1, _byref(remote), 1, 0)
        if r == n:
            return
    if r < 0:
        err = _libc.get_errno()
        if err != errno.EFAULT:
            _other_error(pid, addr, n)
        r = 0
    if not force:
        raise TraceeFault(addr, n)
    _write_proc_mem(pid, addr + r, src[r:])


def _write_proc_mem(pid: int, addr: int, data: bytes) -> None:
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ProcessLookupError(errno.ESRCH, f"tracee {pid} is gone") from None
    try:
        done = 0
        while done < len(data):
            try:
                w = os.pwrite(fd, data[done:], addr + done)
            except OSError as e:
                if e.errno in (errno.EIO, errno.EFAULT):
                    raise TraceeFault(addr, len(data)) from None
                raise
            if w <= 0:
                raise TraceeFault(addr + done, len(data) - done)
            done += w
    except OverflowError:
        raise TraceeFault(addr, len(data)) from None
    finally:
        os.close(fd)
