"""Queue a signal with a siginfo on a host task (rt_sigqueueinfo / rt_tgsigqueueinfo).

A POSIX timer's signal carries SI_TIMER, the timer id, the overrun and sigev_value
(glibc's SIGEV_THREAD helper finds its timer by si_value); ``os.kill`` cannot say
that.  Linux lets another process queue a siginfo whose si_code is negative
(SI_TIMER is -2) if it may signal the task.
"""
from __future__ import annotations

import ctypes
import os

SYS_RT_SIGQUEUEINFO = 129
SYS_RT_TGSIGQUEUEINFO = 297

try:    # glibc's libc by name: find_library runs ldconfig (and imports subprocess)
    _libc = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:                                   # another libc
    import ctypes.util
    _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def sigqueue(host_tgid: int, host_tid: int, sig: int, info: bytes) -> None:
    """``sig`` with siginfo ``info`` to thread ``host_tid`` of ``host_tgid`` (0: to
    the process).  Raises OSError like ``os.kill``."""
    buf = ctypes.create_string_buffer(bytes(info), max(len(info), 128))
    if host_tid:
        rc = _syscall(ctypes.c_long(SYS_RT_TGSIGQUEUEINFO), ctypes.c_long(host_tgid),
                      ctypes.c_long(host_tid), ctypes.c_long(sig), buf)
    else:
        rc = _syscall(ctypes.c_long(SYS_RT_SIGQUEUEINFO), ctypes.c_long(host_tgid),
                      ctypes.c_long(sig), buf)
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
