"""signalfd: the reader's pending signals, as PM holds them, read as records.

PM owns the pending sets.  A read asks PM to take the signals (``ProcSigfdTake``,
which also makes PM report every later change of that process's pending set to
the VFS with ``VfsSigPending``); the VFS keeps the last reported set per pid in
:class:`SigfdBook` with a wait queue, which is what ``poll``/epoll and a blocked
read wait on.  Readiness is that of the process that made the signalfd (Linux
asks the polling task; they differ only for a signalfd inherited across fork).
"""
from __future__ import annotations

import errno
import os
import struct
from typing import Any

from ..lib.errors import SysError
from ..lib.protocol import (PM_PID, SIGFD_RECORD, VFS_PID, ProcSigfdTake, VfsDataReply)
from ..lib.readiness import POLLIN, POLLRDNORM, WaitQueue, wait_ready
from .anon import AnonFile

# struct signalfd_siginfo: 128 bytes; signo, errno, code, pid, uid first
SIGNALFD_SIGINFO = struct.Struct("<IiiII")
SIGINFO_SIZE = 128


class SigfdBook:
    """The pending sets PM reported, by pid, and who waits on each."""

    def __init__(self) -> None:
        self.pending: dict[int, int] = {}
        self.queues: dict[int, WaitQueue] = {}

    def queue(self, pid: int) -> WaitQueue:
        q = self.queues.get(pid)
        if q is None:
            q = self.queues[pid] = WaitQueue()
        return q

    def set(self, pid: int, pending: int) -> None:
        old = self.pending.get(pid, 0)
        self.pending[pid] = pending
        if pending & ~old:
            q = self.queues.get(pid)
            if q:
                q.wake(POLLIN | POLLRDNORM)

    def forget(self, pid: int) -> None:
        self.pending.pop(pid, None)
        self.queues.pop(pid, None)


class SignalFd(AnonFile):
    name = b"[signalfd]"

    def __init__(self, srv: Any, owner: int, mask: int) -> None:
        super().__init__()
        self.srv = srv
        self.owner = owner
        self.mask = mask

    def set_mask(self, mask: int) -> None:
        self.mask = mask
        book = self.srv.sigfds
        if book.pending.get(self.owner, 0) & mask:
            book.queue(self.owner).wake(POLLIN | POLLRDNORM)

    def poll(self, of: Any, events: int) -> int:
        if self.srv.sigfds.pending.get(self.owner, 0) & self.mask:
            return (POLLIN | POLLRDNORM) & events
        return 0

    def waitq(self, of: Any) -> WaitQueue:
        return self.srv.sigfds.queue(self.owner)

    def read(self, req: Any, of: Any, count: int, offset: int) -> Any:
        if offset != -1:
            raise SysError(errno.ESPIPE)
        if count < SIGINFO_SIZE:
            raise SysError(errno.EINVAL)
        return self._read(req, of, count // SIGINFO_SIZE)

    async def _read(self, req: Any, of: Any, limit: int) -> VfsDataReply:
        srv, pid = self.srv, req.caller
        book = srv.sigfds
        while True:
            reply = (await srv.lattice.sendrec(VFS_PID, PM_PID, ProcSigfdTake(
                pid=pid, mask=self.mask, max=limit))).body
            if reply.error:
                raise SysError(reply.error)
            book.set(pid, reply.pending)
            if reply.result:
                return VfsDataReply(result=reply.result * SIGINFO_SIZE,
                                    data=_siginfos(reply.data))
            if of.flags & os.O_NONBLOCK:
                raise SysError(errno.EAGAIN)
            mask = self.mask
            await srv.interruptible(req, wait_ready([book.queue(pid)],
                                                    lambda: bool(book.pending.get(pid, 0) & mask)))

    def fdinfo(self, of: Any) -> bytes:
        return b"sigmask:\t%016x\n" % self.mask


def _siginfos(records: bytes) -> bytes:
    out = bytearray()
    for signo, code, pid, uid in SIGFD_RECORD.iter_unpack(records):
        rec = SIGNALFD_SIGINFO.pack(signo, 0, code, pid & 0xFFFFFFFF, uid)
        out += rec + bytes(SIGINFO_SIZE - len(rec))
    return bytes(out)


async def watch(srv: Any, pid: int, mask: int) -> int:
    """Ask PM for ``pid``'s pending set, to report its changes from now on, and to
    keep the signals in ``mask`` for signalfds."""
    reply = (await srv.lattice.sendrec(VFS_PID, PM_PID, ProcSigfdTake(pid=pid, mask=mask,
                                                                      max=0))).body
    if reply.error:
        raise SysError(reply.error)
    srv.sigfds.set(pid, reply.pending)
    return reply.pending


def pending_changed(srv: Any, pid: int, pending: int) -> None:
    if pid in srv.procs:                  # (a notice may cross the process's exit)
        srv.sigfds.set(pid, pending)
