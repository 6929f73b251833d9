"""ptrace requests, options, events and thin wrappers (Linux x86-64 values).

Every wrapper raises ``OSError`` with the C errno; ``ProcessLookupError``
(ESRCH) means the tracee died or is not in a ptrace-stop — callers treat it as
"the death report is on its way".
"""
from __future__ import annotations

import ctypes
import os

from . import _libc

PTRACE_CONT = 7
PTRACE_KILL = 8
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_SYSCALL = 24
PTRACE_GETEVENTMSG = 0x4201
PTRACE_GETSIGINFO = 0x4202
SIGINFO_SIZE = 128
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208

PTRACE_O_TRACESYSGOOD = 0x1
PTRACE_O_TRACEFORK = 0x2
PTRACE_O_TRACEVFORK = 0x4
PTRACE_O_TRACECLONE = 0x8
PTRACE_O_TRACEEXEC = 0x10
PTRACE_O_TRACEVFORKDONE = 0x20
PTRACE_O_TRACEEXIT = 0x40
PTRACE_O_TRACESECCOMP = 0x80
PTRACE_O_EXITKILL = 0x100000

PTRACE_EVENT_FORK = 1
PTRACE_EVENT_VFORK = 2
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_VFORK_DONE = 5
PTRACE_EVENT_EXIT = 6
PTRACE_EVENT_SECCOMP = 7
PTRACE_EVENT_STOP = 128

# Not exported by Python 3.11's os module.
WALL = 0x40000000  # __WALL: threads and non-SIGCHLD children too
# __WNOTHREAD: "wait only for children of this thread".
# The tracer thread is the parent of every tracee, and children that other
# threads spawn (trio.run_process forks from a worker thread) stay theirs.
WNOTHREAD = 0x20000000

_ptrace = _libc.ptrace
_ulong = ctypes.c_ulong()
_ulong_ref = ctypes.byref(_ulong)


def _fail(what: str, tid: int) -> None:
    err = _libc.get_errno()
    raise OSError(err, f"{what}({tid}): {os.strerror(err)}")


def seize(tid: int, options: int) -> None:
    if _ptrace(PTRACE_SEIZE, tid, 0, options) != 0:
        _fail("PTRACE_SEIZE", tid)


def resume(request: int, tid: int, sig: int = 0) -> None:
    """PTRACE_CONT / PTRACE_SYSCALL / PTRACE_LISTEN with an optional signal."""
    if _ptrace(request, tid, 0, sig) != 0:
        _fail("ptrace resume", tid)


def geteventmsg(tid: int) -> int:
    if _ptrace(PTRACE_GETEVENTMSG, tid, 0, _ulong_ref) != 0:
        _fail("PTRACE_GETEVENTMSG", tid)
    return _ulong.value


def getsiginfo(tid: int) -> bytes:
    """The ``siginfo_t`` of the signal a tracee is stopped with (128 bytes)."""
    buf = ctypes.create_string_buffer(SIGINFO_SIZE)
    if _libc.ptrace(PTRACE_GETSIGINFO, tid, 0, buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return buf.raw
