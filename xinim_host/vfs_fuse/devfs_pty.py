"""Pseudo-terminals: /dev/ptmx and /dev/pts/N, passed through to the host's ptys.

Opening XINIM's ``/dev/ptmx`` makes the VFS open the host's ``/dev/ptmx``; the
VFS keeps the master fd and serves the XINIM description's reads, writes, polls
and terminal ioctls on it.  The slave is the host's ``/dev/pts/N`` with the same
N: opening XINIM's ``/dev/pts/N`` makes the VFS open that host slave (only for
ptys opened through XINIM -- never the host's other terminals).  So the host's
line discipline does the work (echo, ICANON, ONLCR, EIO after hang-up), and no
tracee ever holds a host pty fd.

Controlling terminals are XINIM's: TIOCSCTTY (or a session leader opening a
slave without O_NOCTTY) records the caller's XINIM session on the pty, and
TIOCGPGRP/TIOCSPGRP/TIOCGSID answer from that record with XINIM ids.  The host
never sees the sessions, so its line discipline signals nobody; the VFS raises
the terminal's signals itself, through PM: VINTR/VQUIT/VSUSP written to the
master while ISIG is on (SIGINT/SIGQUIT/SIGTSTP to the foreground group), a
window size change (SIGWINCH), the master's last close (SIGHUP and SIGCONT to
the session).

Host fds are non-blocking; a read or write that would block parks on the end's
wait queue (``lib/readiness.host_fd_queue``), as poll and epoll do: one watcher
task per direction waits on the host fd, only while someone waits.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import signal
import struct
import termios
from typing import TYPE_CHECKING, Any

import trio

from ..lib.errors import SysError
from ..lib.protocol import PM_PID, VFS_OPEN, ProcInfo, ProcKill, VfsDataReply
from ..lib.readiness import (POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, WatchedQueue,
                             host_fd_queue, wait_ready)
from .devices import SIGTTIN, SIGTTOU, TOSTOP, CharDevice, job_control

if TYPE_CHECKING:
    from ..lib.server import Request

log = logging.getLogger(__name__)

HOST_PTMX = "/dev/ptmx"
PTS_MAJOR = 136                      # UNIX98_PTY_SLAVE_MAJOR (136..143)
TTY_GID = 5

TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TCSBRK, TCXONC, TCFLSH = 0x5409, 0x540A, 0x540B
TIOCEXCL, TIOCNXCL, TIOCSCTTY = 0x540C, 0x540D, 0x540E
TIOCGPGRP, TIOCSPGRP = 0x540F, 0x5410
TIOCGWINSZ, TIOCSWINSZ = 0x5413, 0x5414
FIONREAD = 0x541B
TIOCNOTTY = 0x5422
TCSBRKP, TIOCSBRK, TIOCCBRK = 0x5425, 0x5427, 0x5428
TIOCGSID = 0x5429
TIOCGPTN, TIOCSPTLCK = 0x80045430, 0x40045431
TIOCGPTPEER = 0x5441
TCIFLUSH = 0

# ioctls handed to the host fd as they are: request -> (bytes in, bytes out)
_PASS = {TCGETS: (0, 36), TCSETS: (36, 0), TIOCGWINSZ: (0, 8), TIOCSWINSZ: (8, 0),
         FIONREAD: (0, 4)}
_INT = struct.Struct("<i")
_UINT = struct.Struct("<I")


class Pty:
    """One pseudo-terminal pair made through XINIM's /dev/ptmx."""

    __slots__ = ("n", "sid", "fg", "uid", "gid", "node")

    def __init__(self, n: int, uid: int, gid: int) -> None:
        self.n = n
        self.sid = 0            # the XINIM session it is the controlling terminal of
        self.fg = 0             # its foreground process group (XINIM pgid)
        self.uid = uid
        self.gid = gid
        self.node: Any = None   # its /dev/pts/N vnode (devpts)

    @property
    def rdev(self) -> int:
        return os.makedev(PTS_MAJOR + (self.n >> 20), self.n & 0xFFFFF)


def _host_err(exc: OSError) -> SysError:
    return SysError(exc.errno or errno.EIO)


class PtyRegistry:
    """The ptys open through XINIM, by number; devpts lists these."""

    def __init__(self) -> None:
        self.ptys: dict[int, Pty] = {}
        self.on_change: Any = None          # devpts: make/forget the node

    def create(self, uid: int, gid: int) -> tuple[Pty, int]:
        try:
            fd = os.open(HOST_PTMX, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise SysError(errno.ENODEV if exc.errno == errno.ENOENT else exc.errno or errno.EIO)
        try:
            n = _UINT.unpack(fcntl.ioctl(fd, TIOCGPTN, bytes(4)))[0]
        except OSError as exc:
            os.close(fd)
            raise _host_err(exc) from None
        pty = Pty(n, uid, gid)
        self.ptys[n] = pty
        if self.on_change is not None:
            self.on_change(pty, True)
        return pty, fd

    def gone(self, pty: Pty) -> None:
        if self.ptys.get(pty.n) is pty:
            del self.ptys[pty.n]
            if self.on_change is not None:
                self.on_change(pty, False)

    def open_slave(self, n: int) -> tuple[Pty, int]:
        pty = self.ptys.get(n)
        if pty is None:
            raise SysError(errno.ENXIO)      # not one of ours: the host's terminals stay out
        try:
            fd = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise _host_err(exc) from None
        return pty, fd

    def of_session(self, sid: int) -> Pty | None:
        if sid <= 0:
            return None
        for pty in self.ptys.values():
            if pty.sid == sid:
                return pty
        return None

    def session_ended(self, sid: int) -> None:
        for pty in self.ptys.values():
            if pty.sid == sid:
                pty.sid = pty.fg = 0


def caller_info(srv: Any, req: Request | None) -> Any:
    """PM's record of the process making ``req`` (None if unknown)."""
    if req is None or not hasattr(srv, "peers"):
        return None
    reply = srv.peers.ask(PM_PID, ProcInfo(caller=req.caller, pid=req.caller))
    if reply is None or reply.error:
        return None
    return reply


def _arg(req: Request) -> int:
    """An ioctl's ``arg`` by value, as the C int the kernel reads."""
    arg = getattr(req.msg.body, "arg", 0) & 0xFFFFFFFF
    return arg - (1 << 32) if arg & 0x80000000 else arg


def _caller_fp(srv: Any, req: Request | None) -> Any:
    return srv.procs.get(req.caller) if req is not None else None


class PtyEnd(CharDevice):
    """The I/O of one open master (``/dev/ptmx``) or slave (``/dev/pts/N``)."""

    seekable = False

    def __init__(self, srv: Any, reg: PtyRegistry, pty: Pty, fd: int, master: bool) -> None:
        self.srv = srv
        self.reg = reg
        self.pty = pty
        self.fd = fd
        self.master = master
        self.name = "ptmx" if master else f"pts/{pty.n}"
        self.q = host_fd_queue(fd, readable=True, writable=True)

    # -- life ---------------------------------------------------------------------------
    def close(self, of: Any) -> None:
        fd, self.fd = self.fd, -1
        if fd < 0:
            return
        try:
            trio.lowlevel.notify_closing(fd)
        except RuntimeError:                 # outside trio (a server stopped in a test)
            pass
        os.close(fd)
        if self.master:
            pty = self.pty
            self.reg.gone(pty)
            if pty.sid:                          # hang-up: the session loses its terminal
                for sig in (signal.SIGHUP, signal.SIGCONT):
                    self._kill(-pty.fg if pty.fg > 0 else pty.sid, sig)
                    if pty.fg > 0 and pty.fg != pty.sid:
                        self._kill(pty.sid, sig)

    # -- the terminal's signals -----------------------------------------------------------
    def _kill(self, pid: int, sig: int) -> None:
        """Ask PM to signal ``pid`` (a group if negative); the answer is not awaited."""
        try:
            self.srv.peers.ask(PM_PID, ProcKill(caller=0, pid=pid, sig=int(sig)))
        except Exception as exc:            # Later (PM busy) or gone: the signal still goes
            log.debug("pty %d: signal %d to %d: %s", self.pty.n, sig, pid, exc)

    def _input_signals(self, data: bytes) -> None:
        """Bytes typed into the master: VINTR/VQUIT/VSUSP under ISIG signal the
        foreground group (VLNEXT under IEXTEN quotes the next byte)."""
        pty = self.pty
        if pty.fg <= 0 or not pty.sid:
            return
        try:
            attrs = termios.tcgetattr(self.fd)
        except (OSError, termios.error):
            return
        lflag, cc = attrs[3], attrs[6]
        if not lflag & termios.ISIG:
            return
        keys = {cc[termios.VINTR]: signal.SIGINT, cc[termios.VQUIT]: signal.SIGQUIT,
                cc[termios.VSUSP]: signal.SIGTSTP}
        keys.pop(b"\0", None)                    # _POSIX_VDISABLE
        lnext = cc[termios.VLNEXT] if lflag & termios.IEXTEN else None
        quoted = False
        for i in range(len(data)):
            ch = data[i:i + 1]
            if quoted:
                quoted = False
            elif ch == lnext:
                quoted = True
            elif ch in keys:
                self._kill(-pty.fg, keys[ch])

    # -- data ---------------------------------------------------------------------------
    def _job_control(self, req: Any, sig: int) -> Any:
        """The slave side of a controlling terminal: background access stops the job."""
        if self.master:
            return None
        return job_control(req, self.pty.sid, self.pty.fg, sig)

    def _tostop(self) -> bool:
        try:
            return bool(termios.tcgetattr(self.fd)[3] & TOSTOP)
        except (OSError, termios.error):
            return False

    def read(self, req: Any, of: Any, count: int, offset: int) -> Any:
        if offset != -1:
            raise SysError(errno.ESPIPE)
        self._job_control(req, SIGTTIN)
        if count == 0:
            return b""
        try:
            return os.read(self.fd, count)
        except BlockingIOError:
            if of.flags & os.O_NONBLOCK:
                raise SysError(errno.EAGAIN) from None
        except OSError as exc:
            raise _host_err(exc) from None
        return self._read_later(req, count)

    def _try(self, op: Any, bit: int, out: list[Any]) -> bool:
        """One non-blocking attempt for a parked call (wait_ready's check)."""
        try:
            out.append(op())
        except BlockingIOError:
            self.q.arm(bit)
            return False
        except OSError as exc:
            out.append(_host_err(exc))
        return True

    async def _later(self, req: Any, op: Any, bit: int) -> Any:
        out: list[Any] = []
        await req.server.interruptible(req, wait_ready([self.q], lambda: self._try(op, bit, out)))
        if isinstance(out[0], SysError):
            raise out[0]
        return out[0]

    async def _read_later(self, req: Any, count: int) -> VfsDataReply:
        data = await self._later(req, lambda: os.read(self.fd, count), POLLIN)
        return VfsDataReply(result=len(data), data=data)

    def write(self, req: Any, of: Any, data: bytes, offset: int) -> Any:
        if offset != -1:
            raise SysError(errno.ESPIPE)
        if not data:
            return 0
        if self.master:
            self._input_signals(data)
        elif self.pty.sid and self._tostop():
            self._job_control(req, SIGTTOU)
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            if of.flags & os.O_NONBLOCK:
                raise SysError(errno.EAGAIN) from None
        except OSError as exc:
            raise _host_err(exc) from None
        return self._write_later(req, data)

    async def _write_later(self, req: Any, data: bytes) -> int:
        return await self._later(req, lambda: os.write(self.fd, data), POLLOUT)

    def poll(self, of: Any, events: int) -> int:
        if self.fd < 0:
            return POLLNVAL
        p = select.poll()
        p.register(self.fd, events & 0xFFFF)
        ready = p.poll(0)
        revents = ready[0][1] if ready else 0
        if not revents & (POLLERR | POLLHUP):
            self.q.arm(events & (POLLIN | POLLOUT) & ~revents)   # watch what is not ready
        return revents

    def waitq(self, of: Any) -> WatchedQueue:
        return self.q

    # -- control ------------------------------------------------------------------------
    def ioctl(self, req: Request, of: Any, request: int, data: bytes) -> tuple[int, bytes]:
        if request in (TCSETS, TCSETSW, TCSETSF, TCFLSH, TCXONC, TIOCSPGRP):
            self._job_control(req, SIGTTOU)
        if request in _PASS:
            size_in, size_out = _PASS[request]
            buf = bytes(data[:size_in]).ljust(max(size_in, size_out), b"\0")
            if len(data) < size_in:
                raise SysError(errno.EFAULT)
            if request == TIOCSWINSZ:
                old = self._host_ioctl(TIOCGWINSZ, bytes(8), 8)[1]
                answer = self._host_ioctl(request, buf, size_out)
                if old != buf[:8] and self.pty.fg > 0:
                    self._kill(-self.pty.fg, signal.SIGWINCH)
                return answer
            return self._host_ioctl(request, buf, size_out)
        if request in (TCSETSW, TCSETSF):
            # "after the output drains": waiting here would stall the whole VFS, so
            # like TCSETS (TCSAFLUSH still throws the pending input away)
            if request == TCSETSF:
                self._host_ioctl_int(TCFLSH, TCIFLUSH)
            if len(data) < 36:
                raise SysError(errno.EFAULT)
            return self._host_ioctl(TCSETS, bytes(data[:36]), 0)
        if request in (TCFLSH, TCXONC):
            return self._host_ioctl_int(request, _arg(req)), b""
        if request in (TCSBRK, TCSBRKP, TIOCSBRK, TIOCCBRK, TIOCEXCL, TIOCNXCL):
            return 0, b""                        # tcdrain/breaks: nothing to wait for here
        if request == TIOCGPTN:
            if not self.master:
                raise SysError(errno.ENOTTY)
            return 0, _UINT.pack(self.pty.n)
        if request == TIOCSPTLCK:
            if not self.master:
                raise SysError(errno.ENOTTY)
            if len(data) < 4:
                raise SysError(errno.EFAULT)
            return self._host_ioctl(request, bytes(data[:4]), 0)
        if request == TIOCGPTPEER:
            if not self.master:
                raise SysError(errno.ENOTTY)
            return self._peer(req), b""
        if request == TIOCSCTTY:
            return self._set_ctty(req, force=_arg(req) == 1), b""
        if request == TIOCNOTTY:
            info = caller_info(self.srv, req)
            if info is None or self.pty.sid != info.sid:
                raise SysError(errno.ENOTTY)
            if info.sid == info.pid:
                self.pty.sid = self.pty.fg = 0
            return 0, b""
        if request in (TIOCGPGRP, TIOCGSID):
            self._check_ctty(req)
            value = self.pty.fg if request == TIOCGPGRP else self.pty.sid
            return 0, _INT.pack(value)
        if request == TIOCSPGRP:
            if len(data) < 4:
                raise SysError(errno.EFAULT)
            info = self._check_ctty(req)
            (pgid,) = _INT.unpack_from(data)
            if pgid < 0:
                raise SysError(errno.EINVAL)
            if info is not None and pgid != info.pgid and not self._pgrp_in_session(pgid, info):
                raise SysError(errno.EPERM)
            self.pty.fg = pgid
            return 0, b""
        raise SysError(errno.ENOTTY)

    def _host_ioctl(self, request: int, buf: bytes, size_out: int) -> tuple[int, bytes]:
        try:
            out = fcntl.ioctl(self.fd, request, buf) if buf else fcntl.ioctl(self.fd, request)
        except OSError as exc:
            raise _host_err(exc) from None
        if isinstance(out, int):
            return out, b""
        return 0, bytes(out[:size_out])

    def _host_ioctl_int(self, request: int, value: int) -> int:
        try:
            return fcntl.ioctl(self.fd, request, value)
        except OSError as exc:
            raise _host_err(exc) from None

    def _check_ctty(self, req: Request) -> Any:
        """The caller's PM record; ENOTTY unless this pty is its controlling terminal
        (the master side may ask anyway, as on Linux)."""
        info = caller_info(self.srv, req)
        if self.master:
            return info
        if info is not None and self.pty.sid != info.sid:
            raise SysError(errno.ENOTTY)
        if info is None and not self.pty.sid:
            raise SysError(errno.ENOTTY)
        return info

    def _pgrp_in_session(self, pgid: int, info: Any) -> bool:
        """Is process group ``pgid`` in the caller's session (PM knows)?"""
        reply = self.srv.peers.ask(PM_PID, ProcInfo(caller=info.pid, pid=pgid))
        if reply is None:
            return True
        return not reply.error and reply.sid == info.sid

    def _set_ctty(self, req: Request | None, force: bool = False, info: Any = None) -> int:
        if info is None:
            info = caller_info(self.srv, req)
        if info is None:
            return 0                             # nobody to tell (a VFS alone)
        pty = self.pty
        if pty.sid == info.sid:
            return 0
        if info.sid != info.pid:
            raise SysError(errno.EPERM)          # not a session leader
        if self.reg.of_session(info.sid) is not None:
            raise SysError(errno.EPERM)          # it has a controlling terminal already
        if pty.sid and not (force and info.euid == 0):
            raise SysError(errno.EPERM)          # another session's terminal
        pty.sid = info.sid
        pty.fg = info.pgid
        return 0

    def _peer(self, req: Request) -> int:
        """TIOCGPTPEER: a new fd of the caller for the slave (flags O_RDWR|O_NOCTTY...)."""
        srv = self.srv
        fp = _caller_fp(srv, req)
        if fp is None:
            raise SysError(errno.ESRCH)
        flags = _arg(req)
        if flags & ~(os.O_ACCMODE | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC):
            raise SysError(errno.EINVAL)
        node = self.pty.node
        fp.lowest_free()
        pty, hfd = self.reg.open_slave(self.pty.n)
        end = PtyEnd(srv, self.reg, pty, hfd, master=False)
        of = srv.open_file(srv.devpts, node, end,
                           (flags & ~(os.O_NOCTTY | os.O_CLOEXEC)) | 0o100000)
        of.path = b"/dev/pts/%d" % pty.n
        try:
            return fp.add(of, bool(flags & os.O_CLOEXEC))
        except SysError:
            srv.drop(of)
            raise


class PtmxDevice(CharDevice):
    """/dev/ptmx (5,2): every open is a new pty; the description's I/O is its master."""

    name = "ptmx"
    seekable = False

    def __init__(self, srv: Any, reg: PtyRegistry) -> None:
        self.srv = srv
        self.reg = reg

    def open(self, req: Request | None, of: Any) -> None:
        fp = _caller_fp(self.srv, req)
        uid, gid = (fp.euid, TTY_GID) if fp is not None else (0, TTY_GID)
        pty, fd = self.reg.create(uid, gid)
        of.io = PtyEnd(self.srv, self.reg, pty, fd, master=True)


class PtsDevice(CharDevice):
    """/dev/pts/N (136,N): the slave of an open pty."""

    name = "pts"
    seekable = False

    def __init__(self, srv: Any, reg: PtyRegistry) -> None:
        self.srv = srv
        self.reg = reg

    def open(self, req: Request | None, of: Any) -> None:
        rdev = of.node.st.st_rdev
        n = ((os.major(rdev) - PTS_MAJOR) << 20) | os.minor(rdev)
        pty = self.reg.ptys.get(n)
        info = None
        if (pty is not None and not pty.sid and req is not None
                and req.msg.m_type == VFS_OPEN and not req.msg.body.flags & os.O_NOCTTY):
            info = caller_info(self.srv, req)    # (asked first: PM may answer later)
        pty, fd = self.reg.open_slave(n)
        end = PtyEnd(self.srv, self.reg, pty, fd, master=False)
        of.io = end
        if info is not None and info.sid == info.pid:
            try:                                 # a session leader's first terminal
                end._set_ctty(req, info=info)
            except SysError:
                pass


class TtyDevice(CharDevice):
    """/dev/tty (5,0): the caller's controlling terminal -- the pty its session
    acquired, else the console (every XINIM process's terminal here)."""

    name = "tty"
    seekable = False

    def __init__(self, srv: Any, reg: PtyRegistry, console: CharDevice) -> None:
        self.srv = srv
        self.reg = reg
        self.console = console

    def open(self, req: Request | None, of: Any) -> None:
        info = caller_info(self.srv, req) if self.reg.ptys else None
        pty = self.reg.of_session(info.sid) if info is not None else None
        if pty is None:
            of.io = self.console
            self.console.open(req, of)
            return
        pty, fd = self.reg.open_slave(pty.n)
        of.io = PtyEnd(self.srv, self.reg, pty, fd, master=False)
