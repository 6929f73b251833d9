"""Character devices: /dev/null, zero, full, random, urandom, tty, console
(the pty drivers, /dev/ptmx and /dev/pts/N, are in ``devfs_pty``).

A device is the ``io`` of an open file description (see ``fdtable``)::

    read(req, of, count, offset)  -> bytes | None | coroutine returning a reply
    write(req, of, data, offset)  -> int | None | coroutine
    ioctl(of, request, data)      -> (result, out bytes)     # SysError(ENOTTY) if unknown
    poll(of, events)              -> revents
    open(of) / close(of)

The console device wraps the console object the server was given::

    console.write(data: bytes) -> int
    async console.read(count: int) -> bytes
    console.ioctl(request: int, arg: bytes) -> (result: int, out: bytes)   # optional
    console.readable() -> bool               # optional: input ready (poll, O_NONBLOCK)
    console.waitq: WatchedQueue              # optional: woken when input may be there
    async console.wait_readable() -> None    # else: what a watcher task awaits for poll
    console.in_fd: int                       # else: a host fd to ask (FdConsole)
"""
from __future__ import annotations

import errno
import os
import select
from typing import Any

from ..lib.errors import SysError
from ..lib.protocol import (ERESTARTSYS, FIRST_USER_PID, PM_PID, ProcInfo, ProcTtyStop,
                            VfsDataReply)
from ..lib.readiness import (POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM, WaitQueue, WatchedQueue,
                             host_fd_queue)

_READY = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM
TCGETS = 0x5401
TCSETS, TCSETSW, TCSETSF, TCFLSH, TCXONC = 0x5402, 0x5403, 0x5404, 0x540B, 0x540A
TIOCSPGRP = 0x5410
SIGTTIN, SIGTTOU = 21, 22
TOSTOP = 0o400                           # c_lflag bit
_LFLAG = slice(12, 16)                   # c_lflag in struct termios
# ioctls a background process may not make unchecked (Linux tty_check_change)
_CHANGES = frozenset({TCSETS, TCSETSW, TCSETSF, TCFLSH, TCXONC, TIOCSPGRP})


class CharDevice:
    """The do-nothing device; subclasses override what they do.  ``req`` is the
    request being served (None for an open the VFS makes itself): a device that
    cares who calls (/dev/tty, ptys) reads it there."""

    name = "dev"
    seekable = True          # lseek succeeds and returns 0, as on /dev/null

    def open(self, req: Any, of: Any) -> None:
        pass

    def close(self, of: Any) -> None:
        pass

    def read(self, req: Any, of: Any, count: int, offset: int) -> Any:
        return b""

    def write(self, req: Any, of: Any, data: bytes, offset: int) -> Any:
        return len(data)

    def seek(self, of: Any, offset: int, whence: int) -> int:
        if not self.seekable:
            raise SysError(errno.ESPIPE)
        return 0

    def ioctl(self, req: Any, of: Any, request: int, data: bytes) -> tuple[int, bytes]:
        raise SysError(errno.ENOTTY)

    def poll(self, of: Any, events: int) -> int:
        return events & _READY

    def waitq(self, of: Any) -> WaitQueue | None:
        """Whom to tell when ``poll`` may change (lib/readiness); None: never."""
        return None


class NullDevice(CharDevice):
    name = "null"


class ZeroDevice(CharDevice):
    name = "zero"

    def read(self, req: Any, of: Any, count: int, offset: int) -> Any:
        return bytes(count)


class FullDevice(ZeroDevice):
    name = "full"

    def write(self, req: Any, of: Any, data: bytes, offset: int) -> Any:
        raise SysError(errno.ENOSPC)


class RandomDevice(CharDevice):
    name = "urandom"

    def read(self, req: Any, of: Any, count: int, offset: int) -> Any:
        return os.urandom(count)


def caller_record(req: Any, pid: int = 0) -> Any:
    """PM's record of ``pid`` (0: the caller of ``req``); None when there is no PM."""
    peers = getattr(getattr(req, "server", None), "peers", None)
    if peers is None or req is None or req.caller < FIRST_USER_PID:
        return None
    return peers.ask(PM_PID, ProcInfo(caller=req.caller, pid=pid or req.caller))


def job_control(req: Any, sid: int, fg: int, sig: int) -> Any:
    """Linux ``tty_check_change``/``job_control`` for a terminal that is session
    ``sid``'s controlling terminal with foreground group ``fg``: a process of that
    session outside the foreground group that reads it (SIGTTIN), or changes or
    (under TOSTOP) writes it (SIGTTOU), stops its group first and its call restarts
    when it is continued; a read by one that ignores or blocks SIGTTIN, or by an
    orphaned group, fails EIO.  Returns the caller's PM record (or None)."""
    if not sid or fg <= 0:
        return None
    info = caller_record(req)
    if info is None or info.error or info.sid != sid or info.pgid == fg:
        return info
    reply = req.server.peers.ask(PM_PID, ProcTtyStop(pid=req.caller, sig=sig))
    if reply is None:
        return info
    if reply.error:
        raise SysError(reply.error)
    if reply.result == 0:
        raise SysError(ERESTARTSYS)          # stopped; the call runs again after SIGCONT
    if sig == SIGTTIN:
        raise SysError(errno.EIO)
    return info


class ConsoleDevice(CharDevice):
    """The system console: output written at once, input read without blocking
    the server (the read runs as its own task and can be interrupted)."""

    name = "console"
    seekable = False

    def __init__(self, console: Any) -> None:
        self.console = console
        self._queue = _console_queue(console)

    def write(self, req: Any, of: Any, data: bytes, offset: int) -> Any:
        if offset != -1:
            raise SysError(errno.ESPIPE)
        if self._tostop():
            self._job_control(req, SIGTTOU)
        return self.console.write(data)

    def read(self, req: Any, of: Any, count: int, offset: int) -> Any:
        if offset != -1:
            raise SysError(errno.ESPIPE)
        self._job_control(req, SIGTTIN)
        if count == 0:
            return b""
        if of.flags & os.O_NONBLOCK and self._readable() is False:
            raise SysError(errno.EAGAIN)
        return self._read(req, count)

    def _readable(self) -> bool | None:
        """Is input waiting?  None: the console cannot tell."""
        readable = getattr(self.console, "readable", None)
        if readable is not None:
            return bool(readable())
        fd = getattr(self.console, "in_fd", None)     # FdConsole: ask the host fd
        if isinstance(fd, int):
            try:
                return bool(select.select([fd], [], [], 0)[0])
            except (OSError, ValueError):
                return None
        return None

    async def _read(self, req: Any, count: int) -> VfsDataReply:
        data = await req.server.interruptible(req, self.console.read(count))
        data = bytes(data[:count])
        return VfsDataReply(result=len(data), data=data)

    # -- job control: the console is the controlling terminal of its session ---------
    def _caller_info(self, req: Any, pid: int = 0) -> Any:
        return caller_record(req, pid)

    def _job_control(self, req: Any, sig: int) -> Any:
        fg = getattr(self.console, "fg_pgrp", None)
        if fg is None:
            return None
        return job_control(req, self.console.sid, fg, sig)

    def _tostop(self) -> bool:
        ioctl = getattr(self.console, "ioctl", None)
        if ioctl is None or getattr(self.console, "fg_pgrp", None) is None:
            return False
        try:
            lflag = int.from_bytes(bytes(ioctl(TCGETS, b"")[1])[_LFLAG], "little")
        except (SysError, OSError, ValueError):
            return False
        return bool(lflag & TOSTOP)

    def ioctl(self, req: Any, of: Any, request: int, data: bytes) -> tuple[int, bytes]:
        ioctl = getattr(self.console, "ioctl", None)
        if ioctl is None:
            raise SysError(errno.ENOTTY)
        if request in _CHANGES:
            info = self._job_control(req, SIGTTOU)
            if request == TIOCSPGRP and info is not None and not info.error and len(data) >= 4:
                # the new foreground group must be one of the caller's session (Linux)
                pgid = int.from_bytes(bytes(data[:4]), "little", signed=True)
                if pgid > 0 and pgid != info.pgid:
                    target = self._caller_info(req, pgid)   # (its leader, when alive)
                    if target is not None and not target.error and target.sid != info.sid:
                        raise SysError(errno.EPERM)
        result, out = ioctl(request, data)
        return result, bytes(out)

    def poll(self, of: Any, events: int) -> int:
        r = events & (POLLOUT | POLLWRNORM)
        if self._readable() is not False:
            r |= events & (POLLIN | POLLRDNORM)
        elif events & (POLLIN | POLLRDNORM) and self._queue is not None:
            self._queue.arm(POLLIN)          # a waiter saw no input: watch for it
        return r

    def waitq(self, of: Any) -> WatchedQueue | None:
        return self._queue


def _console_queue(console: Any) -> WatchedQueue | None:
    """The console's own queue, else one watching its wait_readable or its input fd."""
    if hasattr(console, "waitq"):          # its own (None: input that never waits)
        q = console.waitq
        return q if isinstance(q, WatchedQueue) else None
    wait = getattr(console, "wait_readable", None)
    if wait is not None:
        return WatchedQueue({POLLIN: wait})
    fd = getattr(console, "in_fd", None)
    if isinstance(fd, int):
        return host_fd_queue(fd)
    return None


class DeviceTable(dict):
    """rdev -> driver.  The pty slaves (majors 136-143) share one driver, ``pts``."""

    pts: CharDevice | None = None

    def get(self, rdev: int, default: Any = None) -> Any:   # type: ignore[override]
        dev = dict.get(self, rdev)
        if dev is None:
            if self.pts is not None and 136 <= os.major(rdev) <= 143:
                return self.pts
            return default
        return dev


def make_devices(console: Any) -> DeviceTable:
    """rdev -> device, with Linux's numbers (so `ls -l /dev` looks familiar).
    devfs adds /dev/tty (the caller's terminal), /dev/ptmx and the pty slaves
    (``devfs.install_devfs``); until then /dev/tty is the console."""
    cons: CharDevice = ConsoleDevice(console) if console is not None else NullDevice()
    rnd = RandomDevice()
    return DeviceTable({
        os.makedev(1, 3): NullDevice(),
        os.makedev(1, 5): ZeroDevice(),
        os.makedev(1, 7): FullDevice(),
        os.makedev(1, 8): rnd,
        os.makedev(1, 9): rnd,
        os.makedev(5, 0): cons,          # /dev/tty
        os.makedev(5, 1): cons,          # /dev/console
    })
