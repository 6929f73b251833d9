"""The consoles: what the kernel's ``debug_write`` and the VFS console device
(``vfs_fuse/devices.py`` ``ConsoleDevice``: write, async read, ioctl, readable,
wait_readable) talk to.

``TtyConsole`` -- the system console through the 16550A model::

    program ── VFS ConsoleDevice ── TtyConsole (slave of a host pty: the line discipline)
                                        │ ldisc pty master
    kernel debug_write / boot log ──── uart.Console (driver: THR / RBR, IIR, LSR)
                                        │ registers
                                     Uart16550 ── line (PtyLine: /dev/pts/N, or StdioLine)

The cooked layer (echo, canonical mode, erase/kill/werase, ^V, ^D, ICRNL/ONLCR,
VMIN/VTIME, the window size) is the *host's* line discipline: the console owns a
second host pty (the "ldisc pty") and keeps its slave in whatever mode the programs
set (cooked by default).  Bytes the UART receives are written into the ldisc pty's
master as if typed; what the line discipline emits on the master (echo and program
output, post-processed) is written to the UART's THR by the driver.  Programs' reads,
writes and termios ioctls go to the slave.  This is Linux's own arrangement (n_tty
above the 8250 driver) with the real n_tty doing the work, so every corner of it --
canonical-mode editing, ^D at line start, ECHOCTL's "^C", IXON, IUTF8 -- behaves as on
Linux, which a small line discipline written here would not.  Why not simply hand the
programs the UART's own line pty: the line pty is the *cable*; its far side is a
terminal emulator (screen/picocom, or your terminal in ``stdio`` mode), and the kernel
must see every byte to raise signals and to put its own log on the line.

What the host line discipline cannot do for us is *whom* to signal: the ldisc pty is
nobody's controlling terminal on the host, so its ISIG characters signal no one there.
The console therefore tracks the XINIM foreground process group (TIOCSPGRP/TIOCGPGRP
in XINIM pgids; init's group, 1, at boot, so a shell started by init finds itself in
the foreground) and, for each received byte that is VINTR/VQUIT/VSUSP while ISIG is on
(honouring ^V), asks PM to signal that group: ``ProcKill(caller=0, pid=-pgid, sig)``
from the kernel.  The byte still goes into the line discipline, which flushes and
echoes "^C" as Linux does.  A window-size change (from the line, or a program's
TIOCSWINSZ) sends SIGWINCH the same way.

The kernel's ``debug_write`` and the boot log bypass the line discipline, like
``printk`` on a serial console: ``kernel_sink`` writes them straight to the driver,
turning "\\n" into "\\r\\n".

``FdConsole`` is the console on this process's own fds (``xinim-run`` when its stdio
is not a terminal, or ``--console fd``): termios ioctls go to the host tty, except the
process-group ones, which are kept in XINIM ids as above.
"""
from __future__ import annotations

import collections
import errno
import fcntl
import logging
import os
import select
import signal
import stat
import struct
import termios
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import trio

from ..lib.errors import SysError
from ..lib.readiness import POLLIN, host_fd_queue, wait_ready

if TYPE_CHECKING:
    from .console import Console as UartDriver
    from .pty_line import FdLine

log = logging.getLogger(__name__)

WINSIZE = struct.Struct("<HHHH")
_INT = struct.Struct("<i")
TERMIOS_SIZE = 36                       # the kernel's struct termios on x86-64
DEFAULT_WINSIZE = (24, 80, 0, 0)
INIT_PGRP = 1                           # init's process group and session

# ioctl numbers (x86-64)
TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TCSBRK, TCXONC, TCFLSH = 0x5409, 0x540A, 0x540B
TIOCSCTTY, TIOCGPGRP, TIOCSPGRP, TIOCOUTQ = 0x540E, 0x540F, 0x5410, 0x5411
TIOCGWINSZ, TIOCSWINSZ, FIONREAD = 0x5413, 0x5414, 0x541B
TIOCNOTTY, TIOCGETD, TCSBRKP, TIOCGSID = 0x5422, 0x5424, 0x5425, 0x5429
N_TTY = 0


class JobControl:
    """The terminal's foreground process group and session, in XINIM ids.

    The console does not know who calls; the VFS console device
    (``vfs_fuse/devices.py``) does, and asks PM: a process of this session outside
    the foreground group that reads (SIGTTIN), changes the terminal or, under
    TOSTOP, writes it (SIGTTOU) stops its group first, and TIOCSPGRP's group must
    be in the caller's session."""

    def __init__(self) -> None:
        self.fg_pgrp = INIT_PGRP
        self.sid = INIT_PGRP

    def job_ioctl(self, request: int, arg: bytes) -> tuple[int, bytes] | None:
        """Answer the process-group ioctls; None for anything else."""
        if request == TIOCGPGRP:
            return 0, _INT.pack(self.fg_pgrp)
        if request == TIOCSPGRP:
            if len(arg) < _INT.size:
                raise SysError(errno.EFAULT)
            (pgrp,) = _INT.unpack_from(arg)
            if pgrp <= 0:
                raise SysError(errno.EINVAL)
            self.fg_pgrp = pgrp
            return 0, b""
        if request == TIOCGSID:
            return 0, _INT.pack(self.sid)
        if request in (TIOCSCTTY, TIOCNOTTY):
            return 0, b""
        return None


def _host_ioctl(fd: int, request: int, arg: bytes, size: int = 64) -> bytes:
    try:
        return bytes(fcntl.ioctl(fd, request, arg.ljust(size, b"\0") if arg else bytes(size)))
    except OSError as exc:
        raise SysError(exc.errno or errno.ENOTTY) from None


class FdConsole(JobControl):
    """Output to ``out_fd``, input from ``in_fd``; termios ioctls go to whichever is a tty."""

    def __init__(self, out_fd: int = 1, in_fd: int = 0) -> None:
        super().__init__()
        self.out_fd, self.in_fd = out_fd, in_fd
        # readers and pollers wait here (lib/readiness); none for a regular file or
        # /dev/null, which are always readable (and which epoll refuses, EPERM)
        try:
            pollable = self._pollable()
        except OSError:
            pollable = False
        self.waitq = host_fd_queue(in_fd) if pollable else None

    def write(self, data: bytes) -> int:
        view, done = memoryview(data), 0
        while done < len(view):
            try:
                done += os.write(self.out_fd, view[done:])
            except BlockingIOError:
                select.select([], [self.out_fd], [])
            except BrokenPipeError:
                raise SysError(errno.EPIPE) from None
        return done

    async def read(self, count: int) -> bytes:
        if not self._pollable():
            # A regular file or /dev/null: always readable (epoll refuses it), and
            # reading it does not wait on anyone.
            await trio.lowlevel.checkpoint()
            return os.read(self.in_fd, count)
        while True:
            await wait_ready([self.waitq], self._input_ready)
            try:
                return os.read(self.in_fd, count)
            except BlockingIOError:
                continue

    def _input_ready(self) -> bool:
        try:
            ready = bool(select.select([self.in_fd], [], [], 0)[0])
        except (OSError, ValueError):
            return True                        # a closed fd: the read says why
        if not ready:
            self.waitq.arm(POLLIN)
        return ready

    def _pollable(self) -> bool:
        mode = os.fstat(self.in_fd).st_mode
        return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)
                    or (stat.S_ISCHR(mode) and os.fstat(self.in_fd).st_rdev == os.makedev(1, 3)))

    def tty_fd(self) -> int | None:
        for fd in (self.in_fd, self.out_fd):
            if os.isatty(fd):
                return fd
        return None

    def ioctl(self, request: int, arg: bytes) -> tuple[int, bytes]:
        fd = self.tty_fd()
        if fd is None:
            raise SysError(errno.ENOTTY)
        answer = self.job_ioctl(request, arg)
        if answer is not None:
            return answer
        return 0, _host_ioctl(fd, request, arg)


class KernelSink:
    """``debug_write`` and the boot log: straight to the UART driver, "\\n" -> "\\r\\n"
    (the line is raw; the line discipline is for programs' output)."""

    def __init__(self, driver: "UartDriver") -> None:
        self.driver = driver

    def write(self, data: bytes) -> int:
        self.driver.write(bytes(data).replace(b"\n", b"\r\n"))
        return len(data)


Kill = Callable[[int, int], Awaitable[None]]


class TtyConsole(JobControl):
    """The system console: a host line discipline between the UART driver and programs.

    ``driver`` is the 16550 driver (``uart.Console``); ``line`` the chip's serial line
    (run by ``start`` when given).  ``kill(pid, sig)`` signals XINIM processes (``pid``
    < 0: a group); ``start(system)`` sets it to ask PM.
    """

    def __init__(self, driver: "UartDriver", line: "FdLine | None" = None, *,
                 winsize: tuple[int, int, int, int] | None = None,
                 kill: Kill | None = None) -> None:
        super().__init__()
        self.driver = driver
        self.line = line
        self.kill = kill
        self.kernel_sink = KernelSink(driver)
        self.master_fd, self.slave_fd = os.openpty()
        os.set_blocking(self.master_fd, False)
        os.set_blocking(self.slave_fd, False)
        self.slave_name = os.ttyname(self.slave_fd)
        size = winsize or (line.winsize() if line is not None else None) or DEFAULT_WINSIZE
        fcntl.ioctl(self.master_fd, termios.TIOCSWINSZ, WINSIZE.pack(*size))
        self.signals_sent: collections.deque[tuple[int, int]] = collections.deque(maxlen=64)
        # (pgrp, sig) of the last signals raised, for logs and tests
        self._lnext = False
        self._nursery: trio.Nursery | None = None
        # readers and pollers of the slave wait here; one watcher task on the host
        # fd wakes them, only while someone waits (lib/readiness)
        self.waitq = host_fd_queue(self.slave_fd)
        self._write_lock = trio.Lock()
        self._writing = 0                      # writes queued behind a full line discipline
        # signals go out one at a time, in the order typed (^Z then ^C stays so)
        self._sig_out, self._sig_in = trio.open_memory_channel[tuple[int, int]](float("inf"))
        self._closed = False

    # --- running ---------------------------------------------------------------------
    async def start(self, system: Any = None, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the pumps (and the line) until cancelled; signals go through ``system``'s PM."""
        if system is not None and self.kill is None:
            self.kill = self._pm_kill_for(system)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.line is not None:
                nursery.start_soon(self.line.run)
                nursery.start_soon(self.line.watch_winsize, self.line_resized)
            nursery.start_soon(self._rx_pump)
            nursery.start_soon(self._tx_pump)
            nursery.start_soon(self._signal_sender)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    @staticmethod
    def _pm_kill_for(system: Any) -> Kill:
        """``kill(pid, sig)`` as the kernel: ``ProcKill(caller=0, pid, sig)`` to PM.

        Group 1 (init's, the foreground at boot) cannot be named so: ``pid`` -1 means
        *every* process to kill(2).  Its members are signalled one by one instead
        (PM's listing says who they are; init itself is never signalled)."""
        from ..lib import protocol as p
        ask = system.lattice.sendrec

        async def one(pid: int, sig: int) -> None:
            reply = await ask(p.KERNEL_PID, p.PM_PID, p.ProcKill(caller=p.KERNEL_PID, pid=pid,
                                                                 sig=sig))
            if reply.body.error:
                log.debug("console: kill(%d, %d): errno %d", pid, sig, reply.body.error)

        async def kill(pid: int, sig: int) -> None:
            if pid != -INIT_PGRP:
                await one(pid, sig)
                return
            start, members = 0, []
            while True:
                page = (await ask(p.KERNEL_PID, p.PM_PID, p.ProcList(caller=p.KERNEL_PID,
                                                                     start=start))).body
                if page.error:
                    return
                members += [e.pid for e in p.decode_proc_list(page.data)
                            if e.pgid == INIT_PGRP and e.pid >= p.FIRST_USER_PID]
                if not page.next or page.next <= start:
                    break
                start = page.next
            for member in members:
                await one(member, sig)
        return kill

    def _pull_output(self) -> None:
        """Move what the line discipline holds for the wire to the UART now.  (A
        non-blocking read of the master first runs the pty's pending buffer work, so
        this gets everything programs wrote so far.)"""
        while True:
            try:
                data = os.read(self.master_fd, 4096)
            except OSError:
                return
            if not data:
                return
            self.driver.write(data)

    async def drain(self, timeout: float = 1.0) -> None:
        """Until programs' output so far has left on the line (or ``timeout``): before
        a kernel message that must come after it, and at shutdown."""
        self._pull_output()
        with trio.move_on_after(timeout):
            while self.line is not None and self.line.tx_backlog and not self.line.hung_up:
                await trio.sleep(0.01)

    def close(self) -> None:
        """Close the line discipline's pty (and the line).  Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.master_fd >= 0:
            self._pull_output()
        self.driver.close()
        for fd in (self.master_fd, self.slave_fd):
            try:
                trio.lowlevel.notify_closing(fd)
            except RuntimeError:
                pass
            try:
                os.close(fd)
            except OSError:
                pass
        if self.line is not None:
            self.line.close()

    def __enter__(self) -> "TtyConsole":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the wire side: UART <-> line discipline ---------------------------------------
    async def _rx_pump(self) -> None:
        """Received bytes: signals first, then into the line discipline as typed."""
        while True:
            data = await self.driver.read_some(4096)
            self._isig(data)
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self.master_fd, view)
                except BlockingIOError:
                    n = 0
                if n == 0:
                    await trio.lowlevel.wait_writable(self.master_fd)
                    continue
                view = view[n:]

    async def _tx_pump(self) -> None:
        """What the line discipline emits (echo, program output): out through THR."""
        while True:
            await trio.lowlevel.wait_readable(self.master_fd)
            try:
                data = os.read(self.master_fd, 4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                await trio.sleep(0.05)
                continue
            if data:
                self.driver.write(data)

    def _isig(self, data: bytes) -> None:
        try:
            attrs = termios.tcgetattr(self.slave_fd)
        except termios.error:
            return
        lflag, cc = attrs[3], attrs[6]
        if not lflag & termios.ISIG:
            self._lnext = False
            return
        table = {}
        for index, sig in ((termios.VINTR, signal.SIGINT), (termios.VQUIT, signal.SIGQUIT),
                           (termios.VSUSP, signal.SIGTSTP)):
            ch = cc[index]
            if ch and ch != b"\0":
                table[ch[0]] = int(sig)
        lnext = cc[termios.VLNEXT][0] if lflag & termios.IEXTEN and cc[termios.VLNEXT] else None
        for byte in data:
            if self._lnext:
                self._lnext = False
                continue
            if lnext and byte == lnext:
                self._lnext = True
                continue
            sig = table.get(byte)
            if sig is not None:
                self.signal_foreground(sig)

    def signal_foreground(self, sig: int) -> None:
        """Send ``sig`` to the foreground process group (through PM)."""
        pgrp = self.fg_pgrp
        self.signals_sent.append((pgrp, sig))
        log.debug("console: signal %d to process group %d", sig, pgrp)
        if self.kill is None or self._nursery is None:
            return
        self._sig_out.send_nowait((-pgrp, sig))

    async def _signal_sender(self) -> None:
        async for pid, sig in self._sig_in:
            if self.kill is None:
                continue
            try:
                await self.kill(pid, sig)
            except Exception as exc:   # PM gone (shutdown): nobody left to signal
                log.debug("console: signal %d to %d failed: %s", sig, pid, exc)

    def line_resized(self, size: tuple[int, int, int, int]) -> None:
        """The far end's terminal has a new size: the console's too (SIGWINCH)."""
        self._set_winsize(WINSIZE.pack(*size))

    def _set_winsize(self, packed: bytes) -> None:
        old = _host_ioctl(self.slave_fd, TIOCGWINSZ, b"", WINSIZE.size)
        _host_ioctl(self.slave_fd, TIOCSWINSZ, packed[:WINSIZE.size], WINSIZE.size)
        if old[:WINSIZE.size] != packed[:WINSIZE.size]:
            self.signal_foreground(int(signal.SIGWINCH))

    # --- the programs' side: the slave ----------------------------------------------------
    def write(self, data: bytes) -> Any:
        """Program output into the line discipline.  Returns the count, or (when the line
        discipline is full, e.g. after ^S) a coroutine that finishes the write."""
        if self._writing:
            return self._write_rest(bytes(data), 0)
        try:
            n = os.write(self.slave_fd, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            raise SysError(exc.errno or errno.EIO) from None
        if n == len(data):
            return n
        return self._write_rest(bytes(data), n)

    async def _write_rest(self, data: bytes, done: int) -> int:
        self._writing += 1
        try:
            async with self._write_lock:
                view = memoryview(data)
                while done < len(view):
                    try:
                        done += os.write(self.slave_fd, view[done:])
                        continue
                    except BlockingIOError:
                        pass
                    except OSError as exc:
                        raise SysError(exc.errno or errno.EIO) from None
                    await trio.lowlevel.wait_writable(self.slave_fd)
        finally:
            self._writing -= 1
        return done

    def _termios(self) -> tuple[int, int, int]:
        """(ICANON set, VMIN, VTIME)."""
        attrs = termios.tcgetattr(self.slave_fd)
        cc = attrs[6]
        return (attrs[3] & termios.ICANON, _cc_int(cc[termios.VMIN]),
                _cc_int(cc[termios.VTIME]))

    async def read(self, count: int) -> bytes:
        """A read as n_tty does it: a line in canonical mode (b"" for ^D at its start);
        otherwise VMIN/VTIME (VMIN > 1 is served as VMIN = 1)."""
        deadline = None
        while True:
            icanon, vmin, vtime = self._termios()
            try:
                data = os.read(self.slave_fd, count)
            except BlockingIOError:
                data = None
            except OSError as exc:
                raise SysError(exc.errno or errno.EIO) from None
            if data is not None and (data or icanon or vmin == 0):
                await trio.lowlevel.checkpoint()
                return data
            if not icanon and vmin == 0:      # VTIME > 0: wait that long for a byte
                if deadline is None:
                    deadline = trio.current_time() + vtime / 10
                with trio.move_on_at(deadline):
                    await self.wait_readable()
                    continue
                return b""
            await self.wait_readable()

    def readable(self) -> bool:
        try:
            return bool(select.select([self.slave_fd], [], [], 0)[0])
        except (OSError, ValueError):
            return False

    async def wait_readable(self) -> None:
        """Until input is there.  Any number of tasks may wait (trio allows one waiter
        per fd: the wait queue's one watcher task waits on the slave for them all)."""
        if self.readable():
            await trio.lowlevel.checkpoint()
            return
        await wait_ready([self.waitq], self._input_ready)

    def _input_ready(self) -> bool:
        if self._closed:
            return True
        ready = self.readable()
        if not ready:
            self.waitq.arm(POLLIN)
        return ready

    def ioctl(self, request: int, arg: bytes) -> tuple[int, bytes]:
        answer = self.job_ioctl(request, arg)
        if answer is not None:
            return answer
        fd = self.slave_fd
        if request == TCGETS:
            return 0, _host_ioctl(fd, TCGETS, b"")[:TERMIOS_SIZE]
        if request in (TCSETS, TCSETSW, TCSETSF):
            if len(arg) < TERMIOS_SIZE:
                raise SysError(errno.EFAULT)
            if request == TCSETSF:
                termios.tcflush(fd, termios.TCIFLUSH)
            # TCSETSW/F would wait for output to drain: never on the trio thread (the
            # drain is our own pump); a pty has nothing to drain anyway.
            _host_ioctl(fd, TCSETS, arg[:TERMIOS_SIZE])
            return 0, b""
        if request == TIOCGWINSZ:
            return 0, _host_ioctl(fd, TIOCGWINSZ, b"", WINSIZE.size)[:WINSIZE.size]
        if request == TIOCSWINSZ:
            if len(arg) < WINSIZE.size:
                raise SysError(errno.EFAULT)
            self._set_winsize(arg)
            return 0, b""
        if request == FIONREAD:
            return 0, _host_ioctl(fd, FIONREAD, b"", 4)[:4]
        if request == TIOCOUTQ:
            return 0, _INT.pack(0)
        if request == TCFLSH:
            # The queue selector is passed by value, which the VFS console device does
            # not hand on: flush the input (tcflush(TCIFLUSH), the common use).
            termios.tcflush(fd, termios.TCIFLUSH)
            return 0, b""
        if request in (TCSBRK, TCSBRKP, TCXONC):
            return 0, b""          # tcdrain / break / flow: nothing to wait for here
        if request == TIOCGETD:
            return 0, _INT.pack(N_TTY)
        raise SysError(errno.ENOTTY)


def _cc_int(value: Any) -> int:
    return value[0] if isinstance(value, bytes) else int(value)


def serial_console(kind: str, *, escape: int | None = 0x1D,
                   winsize: tuple[int, int, int, int] | None = None) -> TtyConsole:
    """A ``TtyConsole`` on a new 16550 whose line is a host pty (``"pty"``) or this
    process's terminal (``"stdio"``, raw until ``close()``; ``escape`` (Ctrl-] by
    default, None: none) calls ``line.on_escape``)."""
    from .console import Console
    from .pty_line import PtyLine
    from .stdio_line import StdioLine
    from .uart16550 import Uart16550

    uart = Uart16550()
    line: Any
    if kind == "pty":
        line = PtyLine(uart)
    elif kind == "stdio":
        line = StdioLine(uart, 0, 1, escape=escape)
    else:
        raise ValueError(f"serial line kind {kind!r}: expected 'pty' or 'stdio'")
    try:
        return TtyConsole(Console(uart), line, winsize=winsize)
    except BaseException:
        line.close()
        raise
