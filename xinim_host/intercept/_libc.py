"""Raw libc entry points used by the interceptor (ctypes, argtypes fixed once).

Why not python-ptrace's wrappers: they allocate a fresh register struct and go
through several Python layers per call; the hot path here calls ptrace three
times per stop, so every layer counts (see bench/tracer_stop.py).
"""
from __future__ import annotations

import ctypes
import os

try:    # glibc's libc by name: find_library runs ldconfig (and imports subprocess)
    LIBC_NAME: str | None = "libc.so.6"
    libc = ctypes.CDLL(LIBC_NAME, use_errno=True)
except OSError:                                   # another libc
    import ctypes.util
    LIBC_NAME = ctypes.util.find_library("c")
    libc = ctypes.CDLL(LIBC_NAME, use_errno=True)

_c_long = ctypes.c_long
_c_ulong = ctypes.c_ulong
_c_void_p = ctypes.c_void_p

# long ptrace(enum request, pid_t pid, void *addr, void *data), variadic in
# glibc.  Deliberately *no* argtypes: converting through argtypes doubles
# the cost of a call (0.83 vs 0.41 us measured).  So: small ints (request,
# pid, signal, options) go as C ints -- libffi sign-extends them into the
# 64-bit argument registers -- and pointers must be passed as c_void_p
# objects (see ``vp``), never as bare Python ints.
ptrace = libc.ptrace
ptrace.restype = _c_long

vp = _c_void_p


class iovec(ctypes.Structure):
    _fields_ = [("iov_base", _c_void_p), ("iov_len", ctypes.c_size_t)]


process_vm_readv = libc.process_vm_readv
process_vm_readv.argtypes = [
    ctypes.c_int, ctypes.POINTER(iovec), _c_ulong, ctypes.POINTER(iovec), _c_ulong, _c_ulong,
]
process_vm_readv.restype = ctypes.c_ssize_t

process_vm_writev = libc.process_vm_writev
process_vm_writev.argtypes = process_vm_readv.argtypes
process_vm_writev.restype = ctypes.c_ssize_t

# The same two without argtypes, for the hot small copies (intercept/memory.py):
# another handle on libc, so these function objects are not the ones above.
_raw = ctypes.CDLL(LIBC_NAME, use_errno=True)
process_vm_readv_raw = _raw.process_vm_readv
process_vm_readv_raw.restype = ctypes.c_ssize_t
process_vm_writev_raw = _raw.process_vm_writev
process_vm_writev_raw.restype = ctypes.c_ssize_t

# long syscall(long nr, ...): arguments land in rdi rsi rdx r10 r8 r9 (the
# forked child makes its raw execve/write/exit_group with it).
syscall = libc.syscall
syscall.argtypes = [_c_long, _c_ulong, _c_ulong, _c_ulong, _c_ulong, _c_ulong, _c_ulong]
syscall.restype = _c_long

prctl = libc.prctl
prctl.argtypes = [ctypes.c_int, _c_ulong, _c_ulong, _c_ulong, _c_ulong]
prctl.restype = ctypes.c_int

get_errno = ctypes.get_errno


def raise_errno(what: str = "") -> None:
    """Raise the OSError subclass for the current C errno."""
    err = get_errno()
    raise OSError(err, os.strerror(err), what) if what else OSError(err, os.strerror(err))
