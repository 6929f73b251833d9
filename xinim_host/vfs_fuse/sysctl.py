"""The /proc/sys files root may write: per XINIM system (the host's are never
touched), checked as Linux's proc handlers check them, and honoured by their
owners (pipe-max-size by F_SETPIPE_SZ, msgmni/msgmax by the VFS's System V
queues, shmmax/shmall/shmmni by MM through MM_SHM_LIMITS).

A write is parsed whole at offset 0 (Linux's sysctl_writes_strict): a write at
another offset changes nothing and says it took everything.
"""
from __future__ import annotations

import errno
from typing import Any, Callable

from ..lib import protocol as p
from ..lib import sysv_abi as sv
from ..lib.errors import SysError
from .hostfs import HostFileIO

INT_MAX = (1 << 31) - 1
ULONG_MAX = (1 << 64) - 1
UTS_LEN = 64                      # __NEW_UTS_LEN
PAGE = 4096


def _number(data: bytes, lo: int, hi: int) -> int:
    """proc_dointvec_minmax / proc_doulongvec_minmax: one decimal number,
    surrounding blanks allowed; outside [lo, hi] or not a number is EINVAL."""
    text = data.split(b"\0", 1)[0].strip()
    try:
        value = int(text.split()[0], 10) if text else None
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise SysError(errno.EINVAL)
    return value


def _pipe_size(data: bytes) -> int:
    """proc_dopipe_max_size: an unsigned int rounded up to a power-of-two number
    of pages (at least one); above 2**31 is EINVAL."""
    value = _number(data, 0, (1 << 32) - 1)
    if value > 1 << 31:
        raise SysError(errno.EINVAL)
    size = PAGE
    while size < value:
        size <<= 1
    return size


def _uts_string(data: bytes) -> bytes:
    """proc_dostring: up to the first newline or NUL, at most 64 bytes."""
    return data.split(b"\n", 1)[0].split(b"\0", 1)[0][:UTS_LEN]


def _shm_limits(srv: Any, **change: int) -> tuple[int, int, int]:
    """MM's (shmmax, shmall, shmmni), after setting ``change`` (Linux's when
    there is no MM to ask)."""
    now = (sv.SHMMAX, sv.SHMALL, sv.SHMMNI)
    reply = srv.peers.ask(p.MM_PID, p.MmShmLimits())
    if reply is not None and not reply.error and len(reply.data) == p.SHM_LIMITS.size:
        now = p.SHM_LIMITS.unpack(reply.data)
    if change:
        want = dict(zip(("shmmax", "shmall", "shmmni"), now)) | change
        reply = srv.peers.ask(p.MM_PID, p.MmShmLimits(set=1, **want))
        if reply is None:
            raise SysError(errno.EIO)
        if reply.error:
            raise SysError(reply.error)
        now = p.SHM_LIMITS.unpack(reply.data)
    return now


def writers(srv: Any) -> dict[bytes, Callable[[bytes], None]]:
    """path below /proc/sys -> what a root write of ``data`` does."""

    def pipe_max(data: bytes) -> None:
        srv.pipe_max_size = _pipe_size(data)

    def domainname(data: bytes) -> None:
        srv.domainname = _uts_string(data)

    def msgmni(data: bytes) -> None:
        srv.sysv.msgs.limit = _number(data, 0, sv.IPCMNI)

    def msgmax(data: bytes) -> None:
        srv.sysv.msgmax = _number(data, 0, INT_MAX)

    def shm(name: str, hi: int) -> Callable[[bytes], None]:
        def write(data: bytes) -> None:
            _shm_limits(srv, **{name: _number(data, 0, hi)})
        return write

    return {
        b"fs/pipe-max-size": pipe_max,
        b"kernel/domainname": domainname,
        b"kernel/msgmni": msgmni,
        b"kernel/msgmax": msgmax,
        b"kernel/shmmax": shm("shmmax", ULONG_MAX),
        b"kernel/shmall": shm("shmall", ULONG_MAX),
        b"kernel/shmmni": shm("shmmni", sv.IPCMNI),
    }


def readers(srv: Any) -> dict[bytes, Callable[[], bytes]]:
    """The texts of the writable files: what is set now."""
    return {
        b"fs/pipe-max-size": lambda: b"%d\n" % srv.pipe_max_size,
        b"kernel/domainname": lambda: srv.domainname + b"\n",
        b"kernel/msgmni": lambda: b"%d\n" % srv.sysv.msgs.limit,
        b"kernel/msgmax": lambda: b"%d\n" % srv.sysv.msgmax,
        b"kernel/shmmax": lambda: b"%d\n" % _shm_limits(srv)[0],
        b"kernel/shmall": lambda: b"%d\n" % _shm_limits(srv)[1],
        b"kernel/shmmni": lambda: b"%d\n" % _shm_limits(srv)[2],
    }


class SysctlIO(HostFileIO):
    """An open writable /proc/sys file: reads its text as it was at open (the
    memfd in ``of.hfd``), writes go to its writer."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write

    def write(self, req: Any, of: Any, data: bytes, offset: int) -> int:
        pos = of.offset if offset < 0 else offset
        if pos == 0 and data:
            self._write(data)
        if offset < 0:
            of.offset = pos + len(data)
        return len(data)
