"""The console through the UART: TtyConsole (the host line discipline between the 16550
driver and programs), the kernel's own output path, StdioLine, FdConsole's job control."""
from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import struct
import termios
import tty
from collections.abc import AsyncIterator
from typing import Any
from contextlib import asynccontextmanager

import pytest
import trio

from xinim_host.uart import terminal as C
from xinim_host.uart.terminal import FdConsole, TtyConsole
from xinim_host.lib.errors import SysError
from xinim_host.uart.console import Console
from xinim_host.uart.pty_line import PtyLine
from xinim_host.uart.stdio_line import StdioLine
from xinim_host.uart.uart16550 import Uart16550

WINSIZE = struct.Struct("HHHH")


class Far:
    """The far end of the serial cable: a terminal on the line pty's slave (raw)."""

    def __init__(self, line: PtyLine) -> None:
        self.fd = os.open(line.slave_name, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.buf = bytearray()

    def type(self, data: bytes) -> None:
        os.write(self.fd, data)

    async def expect(self, needle: bytes, timeout: float = 5.0) -> bytes:
        """Everything up to and including ``needle`` (which is consumed)."""
        with trio.fail_after(timeout):
            while needle not in self.buf:
                await trio.lowlevel.wait_readable(self.fd)
                try:
                    self.buf += os.read(self.fd, 4096)
                except BlockingIOError:
                    pass
        end = self.buf.index(needle) + len(needle)
        out = bytes(self.buf[:end])
        del self.buf[:end]
        return out

    def close(self) -> None:
        os.close(self.fd)


@asynccontextmanager
async def tty_console(**kw: object) -> AsyncIterator[tuple[TtyConsole, Far, list]]:
    kills: list[tuple[int, int]] = []

    async def kill(pid: int, sig: int) -> None:
        kills.append((pid, sig))

    uart = Uart16550()
    line = PtyLine(uart)
    console = TtyConsole(Console(uart), line, kill=kill, **kw)  # type: ignore[arg-type]
    far = Far(line)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(console.start)
            yield console, far, kills
            nursery.cancel_scope.cancel()
    finally:
        far.close()
        console.close()


async def until(predicate, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


def termios_of(console: TtyConsole) -> list:
    _, out = console.ioctl(C.TCGETS, b"")
    assert len(out) == C.TERMIOS_SIZE
    iflag, oflag, cflag, lflag = struct.unpack_from("<IIII", out)
    return [iflag, oflag, cflag, lflag, out[17:36]]


def set_termios(console: TtyConsole, *, lflag_off: int = 0, lflag_on: int = 0,
                vmin: int | None = None, vtime: int | None = None) -> None:
    _, out = console.ioctl(C.TCGETS, b"")
    raw = bytearray(out)
    iflag, oflag, cflag, lflag = struct.unpack_from("<IIII", raw)
    struct.pack_into("<I", raw, 12, (lflag & ~lflag_off) | lflag_on)
    if vmin is not None:
        raw[17 + termios.VMIN] = vmin
    if vtime is not None:
        raw[17 + termios.VTIME] = vtime
    console.ioctl(C.TCSETS, bytes(raw))


# --- output -------------------------------------------------------------------------------

async def test_program_output_goes_through_the_line_discipline_and_the_uart() -> None:
    async with tty_console() as (console, far, _):
        sent = []
        sink = console.line.uart.transmit_sink           # the chip's THR, shifted out
        console.line.uart.transmit_sink = lambda data: (sent.append(data), sink(data))
        assert console.write(b"hello\nworld\n") == 12
        assert await far.expect(b"world\r\n") == b"hello\r\nworld\r\n"   # ONLCR by n_tty
        assert b"".join(sent) == b"hello\r\nworld\r\n"


async def test_kernel_output_bypasses_the_line_discipline() -> None:
    async with tty_console() as (console, far, _):
        set_termios(console, lflag_off=termios.ECHO)
        _, raw = console.ioctl(C.TCGETS, b"")
        console.ioctl(C.TCSETS, raw[:4] + bytes(4) + raw[8:])   # programs' mode: no OPOST
        assert console.kernel_sink.write(b"[kernel] up\n") == 12
        assert await far.expect(b"up\r\n") == b"[kernel] up\r\n"


# --- input ---------------------------------------------------------------------------------

async def test_canonical_mode_echo_and_erase() -> None:
    async with tty_console() as (console, far, _):
        received = []
        uart = console.line.uart
        real = uart.receive
        uart.receive = lambda data: (received.append(bytes(data)), real(data))[1]
        far.type(b"ecko\x7f\x7fho hi\r")
        with trio.fail_after(5):
            line = await console.read(100)
        assert line == b"echo hi\n"
        assert b"".join(received) == b"ecko\x7f\x7fho hi\r"     # every byte via RBR
        echoed = await far.expect(b"\r\n")
        assert echoed.startswith(b"ecko")                      # n_tty echoes, ^? erases


async def test_read_returns_one_line_at_a_time_and_eof_on_ctrl_d() -> None:
    async with tty_console() as (console, far, _):
        far.type(b"one\rtwo\r\x04")
        with trio.fail_after(5):
            assert await console.read(100) == b"one\n"
            assert await console.read(100) == b"two\n"
            assert await console.read(100) == b""              # ^D at a line's start


async def test_readable_and_concurrent_waiters() -> None:
    async with tty_console() as (console, far, _):
        assert not console.readable()
        woke = []

        async def waiter(n: int) -> None:
            await console.wait_readable()
            woke.append(n)

        async with trio.open_nursery() as nursery:
            for n in range(3):
                nursery.start_soon(waiter, n)
            await trio.sleep(0.1)
            assert woke == []
            far.type(b"x\r")
        assert sorted(woke) == [0, 1, 2]
        assert console.readable()


async def test_noncanonical_vmin_vtime() -> None:
    async with tty_console() as (console, far, _):
        set_termios(console, lflag_off=termios.ICANON | termios.ECHO, vmin=0, vtime=2)
        start = trio.current_time()
        assert await console.read(10) == b""                   # VTIME 0.2 s, no byte
        assert trio.current_time() - start >= 0.15
        set_termios(console, vmin=0, vtime=0)
        assert await console.read(10) == b""                   # a poll
        set_termios(console, vmin=1, vtime=0)
        far.type(b"k")
        with trio.fail_after(5):
            assert await console.read(10) == b"k"             # no Enter needed


# --- signals ----------------------------------------------------------------------------

async def test_ctrl_c_signals_the_foreground_group_through_pm() -> None:
    async with tty_console() as (console, far, kills):
        far.type(b"\x03")
        await until(lambda: kills)
        assert kills == [(-1, signal.SIGINT)]                  # init's group at boot
        assert console.ioctl(C.TIOCSPGRP, struct.pack("<i", 7)) == (0, b"")
        assert console.ioctl(C.TIOCGPGRP, b"") == (0, struct.pack("<i", 7))
        far.type(b"\x1a\x1c")
        await until(lambda: len(kills) == 3)
        assert kills[1:] == [(-7, signal.SIGTSTP), (-7, signal.SIGQUIT)]
        assert await far.expect(b"^\\")                      # echoed as ECHOCTL does


async def test_ctrl_c_flushes_the_pending_line() -> None:
    async with tty_console() as (console, far, kills):
        far.type(b"half a line\x03")
        await until(lambda: kills)
        far.type(b"fresh\r")
        with trio.fail_after(5):
            assert await console.read(100) == b"fresh\n"


async def test_lnext_and_isig_off_make_ctrl_c_data() -> None:
    async with tty_console() as (console, far, kills):
        far.type(b"\x16\x03\r")                                # ^V ^C: a literal ^C
        with trio.fail_after(5):
            assert await console.read(100) == b"\x03\n"
        set_termios(console, lflag_off=termios.ISIG | termios.ICANON, vmin=1, vtime=0)
        far.type(b"\x03")
        with trio.fail_after(5):
            assert await console.read(100) == b"\x03"
        assert kills == []


async def test_window_size_from_the_line_and_from_programs() -> None:
    async with tty_console() as (console, far, kills):
        _, out = console.ioctl(C.TIOCGWINSZ, b"")
        assert WINSIZE.unpack(out)[:2] == (24, 80)             # a bare pty says 0x0
        fcntl.ioctl(far.fd, termios.TIOCSWINSZ, WINSIZE.pack(30, 100, 0, 0))
        await until(lambda: WINSIZE.unpack(console.ioctl(C.TIOCGWINSZ, b"")[1])[:2] == (30, 100))
        await until(lambda: (-1, signal.SIGWINCH) in kills)
        kills.clear()
        console.ioctl(C.TIOCSWINSZ, WINSIZE.pack(40, 120, 0, 0))
        assert WINSIZE.unpack(console.ioctl(C.TIOCGWINSZ, b"")[1])[:2] == (40, 120)
        await until(lambda: kills == [(-1, signal.SIGWINCH)])
        console.ioctl(C.TIOCSWINSZ, WINSIZE.pack(40, 120, 0, 0))   # no change: no signal
        await trio.sleep(0.05)
        assert kills == [(-1, signal.SIGWINCH)]


async def test_tty_ioctls() -> None:
    async with tty_console() as (console, far, _):
        assert console.ioctl(C.TIOCGSID, b"") == (0, struct.pack("<i", 1))
        assert console.ioctl(C.TIOCSCTTY, b"") == (0, b"")
        assert console.ioctl(C.TIOCGETD, b"") == (0, struct.pack("<i", 0))
        with pytest.raises(SysError) as exc:
            console.ioctl(C.TIOCSPGRP, struct.pack("<i", -3))
        assert exc.value.errno == errno.EINVAL
        with pytest.raises(SysError) as exc:
            console.ioctl(0x5412, b"")                         # TIOCSTI: not here
        assert exc.value.errno == errno.ENOTTY
        far.type(b"abc\r")
        await until(console.readable)
        assert console.ioctl(C.FIONREAD, b"") == (0, struct.pack("<i", 4))
        assert termios_of(console)[3] & termios.ICANON
        for request in (C.TCSETSW, C.TCSETSF):                 # never waits for a drain
            console.ioctl(request, console.ioctl(C.TCGETS, b"")[1])
        assert console.ioctl(C.FIONREAD, b"") == (0, struct.pack("<i", 0))  # TCSETSF flushed


async def test_drain_and_close_deliver_pending_output() -> None:
    async with tty_console() as (console, far, _):
        console.write(b"last words\n")
        await console.drain()
        assert await far.expect(b"words\r\n")


# --- the stdio line -------------------------------------------------------------------------

async def test_stdio_line_is_raw_while_open_and_restored() -> None:
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        assert os.get_blocking(slave)
        uart = Uart16550()
        line = StdioLine(uart, slave, slave)
        escaped = []
        line.on_escape = lambda: escaped.append(True)
        assert not termios.tcgetattr(slave)[3] & (termios.ICANON | termios.ECHO | termios.ISIG)
        assert not os.get_blocking(slave)
        driver = Console(uart)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(line.run)
            os.write(master, b"\x03ab")                        # ^C is data on a raw line
            with trio.fail_after(5):
                got = b""
                while len(got) < 3:
                    got += await driver.read_some()
            assert got == b"\x03ab"
            os.write(master, b"z\x1dq")                        # Ctrl-]: leave
            await until(lambda: escaped)
            driver.write(b"out")
            with trio.fail_after(5):
                while not select.select([master], [], [], 0)[0]:
                    await trio.sleep(0.01)
            assert os.read(master, 100) == b"out"
            nursery.cancel_scope.cancel()
        line.close()
        assert termios.tcgetattr(slave) == before
        assert os.get_blocking(slave)
    finally:
        os.close(master)
        os.close(slave)


# --- FdConsole on a terminal ------------------------------------------------------------------

def test_fd_console_keeps_process_groups_in_xinim_ids() -> None:
    master, slave = os.openpty()
    try:
        cons = FdConsole(out_fd=slave, in_fd=slave)
        assert cons.ioctl(C.TIOCGPGRP, b"") == (0, struct.pack("<i", 1))
        cons.ioctl(C.TIOCSPGRP, struct.pack("<i", 9))          # not the host's pgrp 9
        assert cons.ioctl(C.TIOCGPGRP, b"") == (0, struct.pack("<i", 9))
        fcntl.ioctl(slave, termios.TIOCSWINSZ, WINSIZE.pack(33, 99, 0, 0))
        assert WINSIZE.unpack(cons.ioctl(C.TIOCGWINSZ, b"")[1][:8])[:2] == (33, 99)
    finally:
        os.close(master)
        os.close(slave)
    r, w = os.pipe()
    try:
        with pytest.raises(SysError) as exc:
            FdConsole(out_fd=w, in_fd=r).ioctl(C.TIOCGPGRP, b"")
        assert exc.value.errno == errno.ENOTTY
    finally:
        os.close(r)
        os.close(w)


async def test_kill_of_init_group_names_its_members_not_everyone() -> None:
    """ProcKill's pid -1 means every process: group 1 is signalled member by member."""
    from types import SimpleNamespace

    from xinim_host.lib import protocol as p

    sent: list[p.Payload] = []
    table = [  # pid, ppid, pgid, sid
        (1, 0, 1, 1), (2, 0, 0, 0), (5, 1, 1, 1), (6, 5, 6, 1), (7, 5, 1, 1)]

    async def sendrec(src: int, dst: int, body: p.Payload) -> Any:
        assert (src, dst) == (p.KERNEL_PID, p.PM_PID)
        sent.append(body)
        if isinstance(body, p.ProcList):
            blob = b"".join(p.PROC_LIST_RECORD.pack(pid, ppid, pgid, sid, 0, 0, 1, b"S", b"x")
                            for pid, ppid, pgid, sid in table if pid >= body.start)
            return SimpleNamespace(body=p.ProcListReply(result=len(table), data=blob))
        return SimpleNamespace(body=p.ProcReply(result=0))

    kill = TtyConsole._pm_kill_for(SimpleNamespace(lattice=SimpleNamespace(sendrec=sendrec)))
    await kill(-6, signal.SIGINT)
    assert sent == [p.ProcKill(caller=0, pid=-6, sig=signal.SIGINT)]
    sent.clear()
    await kill(-1, signal.SIGINT)
    kills = [b for b in sent if isinstance(b, p.ProcKill)]
    assert kills == [p.ProcKill(caller=0, pid=5, sig=signal.SIGINT),
                     p.ProcKill(caller=0, pid=7, sig=signal.SIGINT)]
