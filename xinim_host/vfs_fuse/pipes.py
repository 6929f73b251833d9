"""Pipes and FIFOs: a 64 KiB buffer between readers and writers.

Blocking uses the server's "don't reply yet" contract: a read of an empty pipe
or a write that does not fit parks its Request and returns None; the call that
changes the pipe (a write, a read, a close) answers the parked ones and wakes the
pipe's wait queue (``lib/readiness``) for poll, select and epoll.  Every
message carries at most 4096 bytes == PIPE_BUF, so every write is atomic: it
goes in whole or waits.  A parked call registers with the server so a signal
(VFS_CANCEL) or the caller's exit can take it back.
"""
from __future__ import annotations

import collections
import errno
import os
import stat
import struct
import time
from typing import Any, Callable

from ..lib.errors import SysError
from ..lib.protocol import VfsDataReply, VfsStatReply
from ..lib.readiness import POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM, WaitQueue
from .pseudofs import PseudoFs

PIPE_CAPACITY = 65536
PIPE_MAX_SIZE = 1 << 20          # /proc/sys/fs/pipe-max-size: F_SETPIPE_SZ's bound
PIPE_BUF = 4096
PIPEFS_DEV = os.makedev(0, 0x0C)
PIPEFS_MAGIC = 0x50495045
FIONREAD = 0x541B
_IN = POLLIN | POLLRDNORM
_OUT = POLLOUT | POLLWRNORM
_INT = struct.Struct("<i")
_O_NONBLOCK = os.O_NONBLOCK


class _Parked:
    """A read or write waiting on a pipe."""

    __slots__ = ("req", "pipe", "arg", "queue")

    def __init__(self, req: Any, pipe: "Pipe", arg: Any, queue: collections.deque) -> None:
        self.req, self.pipe, self.arg, self.queue = req, pipe, arg, queue

    def finish(self, answer: Any) -> None:
        self.req.server.unblock(self.req.caller, self)
        self.req.reply(answer)

    def cancel(self, err: int) -> None:
        try:
            self.queue.remove(self)
        except ValueError:
            return
        self.req.fail(err)
        self.pipe.pump()      # a writer that left may let the next one in


class Pipe:
    """The buffer and the counts of read and write ends."""

    _next_ino = 1

    def __init__(self, uid: int = 0, gid: int = 0) -> None:
        self.chunks: collections.deque[bytes] = collections.deque()
        self.head = 0                     # bytes of chunks[0] already read
        self.size = 0
        self.readers = 0
        self.writers = 0
        self.rq: collections.deque[_Parked] = collections.deque()
        self.wq: collections.deque[_Parked] = collections.deque()
        self.waitq = WaitQueue()          # poll/select/epoll waiters
        self.open_waiters: list[Any] = []   # FIFO opens waiting for the other side
        self.capacity = PIPE_CAPACITY       # F_SETPIPE_SZ changes it
        self.ino = Pipe._next_ino
        Pipe._next_ino += 1
        self.uid, self.gid = uid, gid
        self.mode = stat.S_IFIFO | 0o600
        self.atime_ns = self.mtime_ns = self.ctime_ns = time.time_ns()

    # -- the buffer ------------------------------------------------------------------
    def _put(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)

    def _take(self, count: int) -> bytes:
        out: list[bytes] = []
        chunks = self.chunks
        while count and chunks:
            first = chunks[0]
            avail = len(first) - self.head
            if avail <= count:
                out.append(first[self.head:] if self.head else first)
                chunks.popleft()
                self.head = 0
                count -= avail
                self.size -= avail
            else:
                out.append(first[self.head:self.head + count])
                self.head += count
                self.size -= count
                count = 0
        return out[0] if len(out) == 1 else b"".join(out)

    # -- waking -----------------------------------------------------------------------
    def pump(self, mask: int = -1) -> None:
        """Answer every parked call that can proceed now; wake the wait queue with
        ``mask``, the events that may have become true."""
        progress = True
        while progress:
            progress = False
            while self.rq and (self.size or not self.writers):
                w = self.rq.popleft()
                data = self._take(w.arg) if self.size else b""
                w.finish(VfsDataReply(result=len(data), data=data))
                progress = True
            if not self.readers:
                while self.wq:                       # nobody will ever read it: EPIPE
                    w = self.wq.popleft()
                    w.req.server.unblock(w.req.caller, w)
                    w.req.fail(errno.EPIPE)
            while self.wq and self.capacity - self.size >= len(self.wq[0].arg):
                w = self.wq.popleft()
                self._put(w.arg)
                w.finish(len(w.arg))
                progress = True
        if self.waitq:
            self.waitq.wake(mask)

    def add_end(self, readable: bool, writable: bool) -> None:
        if readable:
            self.readers += 1
        if writable:
            self.writers += 1
        if self.open_waiters:
            for waiter in list(self.open_waiters):
                waiter.check()
        if self.waitq:
            self.waitq.wake(_OUT if readable else _IN)   # a FIFO's other side came

    def drop_end(self, readable: bool, writable: bool) -> None:
        if readable:
            self.readers -= 1
        if writable:
            self.writers -= 1
        self.pump()

    def revents(self, readable: bool, writable: bool, events: int) -> int:
        r = 0
        if readable:
            if self.size:
                r |= POLLIN | POLLRDNORM
            if not self.writers:
                r |= POLLHUP
        if writable:
            if self.capacity - self.size >= PIPE_BUF:
                r |= POLLOUT | POLLWRNORM
            if not self.readers:
                r |= POLLERR
        return r & (events | POLLERR | POLLHUP)


class PipeEnd:
    """The ``io`` of an open pipe or FIFO (one per open file description)."""

    __slots__ = ("pipe",)
    seekable = False

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe

    def read(self, req: Any, of: Any, count: int, offset: int) -> bytes | None:
        if offset != -1:
            raise SysError(errno.ESPIPE)
        pipe = self.pipe
        if count == 0:
            return b""
        if pipe.size:
            data = pipe._take(count)
            if pipe.wq or pipe.waitq:
                pipe.pump(_OUT)
            return data
        if not pipe.writers:
            return b""                                   # EOF
        if of.flags & _O_NONBLOCK:
            raise SysError(errno.EAGAIN)
        parked = _Parked(req, pipe, count, pipe.rq)
        pipe.rq.append(parked)
        req.server.block(req.caller, parked)
        return None

    def write(self, req: Any, of: Any, data: bytes, offset: int) -> int | None:
        if offset != -1:
            raise SysError(errno.ESPIPE)
        pipe = self.pipe
        if not pipe.readers:
            raise SysError(errno.EPIPE)
        n = len(data)
        if n == 0:
            return 0
        if not pipe.wq and pipe.capacity - pipe.size >= n:
            pipe._put(data)
            pipe.mtime_ns = time.time_ns()
            if pipe.rq or pipe.waitq:
                pipe.pump(_IN)
            return n
        if of.flags & _O_NONBLOCK:
            raise SysError(errno.EAGAIN)
        parked = _Parked(req, pipe, bytes(data), pipe.wq)
        pipe.wq.append(parked)
        req.server.block(req.caller, parked)
        return None

    def seek(self, of: Any, offset: int, whence: int) -> int:
        raise SysError(errno.ESPIPE)

    def poll(self, of: Any, events: int) -> int:
        return self.pipe.revents(of.readable, of.writable, events)

    def ioctl(self, req: Any, of: Any, request: int, data: bytes) -> tuple[int, bytes]:
        if request == FIONREAD:
            return 0, _INT.pack(self.pipe.size)
        raise SysError(errno.ENOTTY)

    def open(self, req: Any, of: Any) -> None:
        self.pipe.add_end(of.readable, of.writable)

    def close(self, of: Any) -> None:
        self.pipe.drop_end(of.readable, of.writable)

    def waitq(self, of: Any) -> WaitQueue:
        return self.pipe.waitq


class FifoEnd(PipeEnd):
    """A named pipe's end: the pipe lives while somebody has the FIFO open."""

    __slots__ = ("registry", "key")

    def __init__(self, pipe: Pipe, registry: dict, key: Any) -> None:
        super().__init__(pipe)
        self.registry, self.key = registry, key

    def close(self, of: Any) -> None:
        super().close(of)
        pipe = self.pipe
        if not pipe.readers and not pipe.writers and not pipe.open_waiters:
            if self.registry.get(self.key) is pipe:
                del self.registry[self.key]       # data left in a closed FIFO is gone


class PipeFs(PseudoFs):
    """The pseudo filesystem anonymous pipes live on (fstat, fchmod, fstatfs)."""

    kind = "pipefs"
    magic = PIPEFS_MAGIC
    dev = PIPEFS_DEV

    def stat_reply(self, pipe: Pipe, fresh: bool = True, who: Any = None) -> VfsStatReply:
        return VfsStatReply(dev=PIPEFS_DEV, ino=pipe.ino, mode=pipe.mode, nlink=1,
                            uid=pipe.uid, gid=pipe.gid, size=0, blksize=4096,
                            atime_ns=pipe.atime_ns, mtime_ns=pipe.mtime_ns,
                            ctime_ns=pipe.ctime_ns)

    @staticmethod
    def setattr(pipe: Pipe, *, mode: int | None = None, uid: int | None = None,
                gid: int | None = None, atime_ns: int | None = None,
                mtime_ns: int | None = None, size: int | None = None) -> None:
        if size is not None:
            raise SysError(errno.EINVAL)
        if mode is not None:
            pipe.mode = stat.S_IFIFO | (mode & 0o7777)
        if uid is not None:
            pipe.uid = uid
        if gid is not None:
            pipe.gid = gid
        if atime_ns is not None:
            pipe.atime_ns = atime_ns
        if mtime_ns is not None:
            pipe.mtime_ns = mtime_ns
        pipe.ctime_ns = time.time_ns()


PIPEFS = PipeFs()


class FifoOpen:
    """An open of a FIFO waiting for the other side (Linux ``wait_for_partner``).

    The opener already counts as a reader/writer while it waits, as on Linux, so
    a non-blocking opener of the other side sees it."""

    __slots__ = ("req", "pipe", "need_writer", "complete", "abort")

    def __init__(self, req: Any, pipe: Pipe, need_writer: bool,
                 complete: Callable[[], Any], abort: Callable[[], None]) -> None:
        self.req, self.pipe, self.need_writer = req, pipe, need_writer
        self.complete, self.abort = complete, abort   # install the fd / drop the description

    def check(self) -> None:
        if (self.pipe.writers if self.need_writer else self.pipe.readers) > 0:
            self._done()
            try:
                answer = self.complete()
            except SysError as exc:
                self.req.fail(exc.errno)
                return
            self.req.reply(answer)

    def _done(self) -> None:
        self.pipe.open_waiters.remove(self)
        self.req.server.unblock(self.req.caller, self)

    def cancel(self, err: int) -> None:
        if self in self.pipe.open_waiters:
            self._done()
            self.req.fail(err)
            self.abort()                  # the half-open end goes away again
