"""The serial line of a ``Uart16550``, made of host file descriptors.

``FdLine`` is the wire in general: bytes the chip transmits are written to ``out_fd``,
bytes readable on ``in_fd`` arrive at the chip's serial input.  Two lines use it:

- ``PtyLine``: a new host pty whose master is the wire.  Someone attaches to the slave
  (``self.slave_name``, e.g. ``/dev/pts/3``) with ``screen`` or ``picocom``, as to a real
  serial port.
- ``StdioLine`` (``uart/stdio_line.py``): the terminal this process runs on.

Why ``PtyLine`` puts the slave in raw mode and keeps it open:
- Its line discipline sits between the wire and the attached terminal program; with echo
  on, every byte the chip sent would be echoed back into the chip's receiver.  The
  cooked tty layer (echo, canonical mode, ^C...) belongs to the *guest* side of the
  chip -- the console in ``kernel/console.py`` -- exactly as Linux's n_tty sits above
  its 8250 driver, not on the cable.
- While no slave fd is open, reads of the master fail with EIO; holding one keeps the
  line "connected" whether or not anyone is attached.

Flow: the chip runs with ``immediate_tx`` (an infinitely fast line), so THRE comes back at
once and a driver never waits.  Transmitted bytes are buffered here and flushed by
``run()``; if nobody drains the line the buffer is capped and the oldest bytes are
dropped (a real serial line loses what nobody listens to).  In the other direction
``run()`` only reads as many bytes from ``in_fd`` as the RX FIFO has room for, so typed or
pasted input waits in the host fd instead of overrunning the FIFO (hardware flow control).

Window size: a real serial cable carries none, but the terminal at the far end has one.
``winsize()`` reads it from the host side (the pty, or our terminal) and
``watch_winsize(callback)`` reports changes, so the console can pass them on (SIGWINCH).
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import termios
import time
import tty
from typing import Callable

import trio

from .uart16550 import Uart16550

log = logging.getLogger(__name__)

DEFAULT_TX_BUFFER_LIMIT = 4 * 1024 * 1024
WINSIZE = struct.Struct("HHHH")          # rows, cols, xpixel, ypixel
WINSIZE_POLL_INTERVAL = 0.25             # a pty tells nobody when its size changes


def get_winsize(fd: int) -> tuple[int, int, int, int] | None:
    """``(rows, cols, xpixel, ypixel)`` of the tty ``fd``; None if it has none."""
    try:
        return WINSIZE.unpack(fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(WINSIZE.size)))
    except OSError:
        return None


class FdLine:
    """Attach ``uart``'s line side to host fds: ``in_fd`` -> receiver, transmitter -> ``out_fd``."""

    name = "fd line"

    def __init__(self, uart: Uart16550, in_fd: int, out_fd: int, *,
                 tx_buffer_limit: int = DEFAULT_TX_BUFFER_LIMIT) -> None:
        self.uart = uart
        self.in_fd, self.out_fd = in_fd, out_fd
        self.tx_buffer_limit = tx_buffer_limit
        self._out = bytearray()
        self._out_ready = trio.Event()
        self._rx_space = trio.Event()
        self.tx_dropped = 0  # bytes lost because the buffer limit was hit
        self.on_hangup: Callable[[], None] | None = None   # in_fd reached EOF
        self.hung_up = False
        uart.immediate_tx = True
        uart.transmit_sink = self._on_transmit
        uart.on_rx_space = self._on_rx_space
        # A cable is plugged in: the other end asserts its modem outputs.
        uart.set_modem_inputs(cts=True, dsr=True, dcd=True, ri=False)

    # --- chip callbacks (synchronous, on the trio thread) ------------------------------
    def _on_transmit(self, data: bytes) -> None:
        self._out += data
        excess = len(self._out) - self.tx_buffer_limit
        if excess > 0:
            if not self.tx_dropped:
                log.warning("%s: nobody reads the line; dropping old output", self.name)
            del self._out[:excess]
            self.tx_dropped += excess
        self._out_ready.set()

    def _on_rx_space(self) -> None:
        self._rx_space.set()

    @property
    def tx_backlog(self) -> int:
        """Bytes transmitted by the chip but not yet written to the host fd."""
        return len(self._out)

    # --- the far end's terminal ---------------------------------------------------------
    def winsize_fd(self) -> int:
        return self.in_fd

    def winsize(self) -> tuple[int, int, int, int] | None:
        """The far end's window size, None when unknown (0 rows or columns)."""
        fd = self.winsize_fd()
        size = get_winsize(fd) if fd >= 0 else None
        return size if size and size[0] and size[1] else None

    async def watch_winsize(self, callback: Callable[[tuple[int, int, int, int]], None]) -> None:
        """Call ``callback(size)`` with the current size, then on each change, forever."""
        last = None
        while True:
            size = self.winsize()
            if size is not None and size != last:
                last = size
                callback(size)
            await trio.sleep(WINSIZE_POLL_INTERVAL)

    # --- the pumps -----------------------------------------------------------------------
    async def run(self) -> None:
        """Move bytes between the chip and the host fds until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._tx_pump)
            nursery.start_soon(self._rx_pump)

    async def _tx_pump(self) -> None:
        while True:
            if not self._out:
                self._out_ready = trio.Event()
                await self._out_ready.wait()
            try:
                n = os.write(self.out_fd, self._out[:65536])
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.out_fd)
                continue
            except OSError as exc:   # EIO: the terminal went away
                if exc.errno not in (errno.EIO, errno.EPIPE):
                    raise
                self._out.clear()
                self._hangup()
                await trio.sleep_forever()
            del self._out[:n]
            await trio.lowlevel.checkpoint()

    async def _rx_pump(self) -> None:
        while True:
            if self.uart.rx_room == 0:
                self._rx_space = trio.Event()
                await self._rx_space.wait()
                continue
            await trio.lowlevel.wait_readable(self.in_fd)
            room = self.uart.rx_room
            if room == 0:
                continue
            try:
                data = os.read(self.in_fd, room)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                if not self._eio_is_transient():
                    self._hangup()
                    return
                await trio.sleep(0.05)
                continue
            if not data:
                self._hangup()
                return
            self._deliver(data, room)

    def _eio_is_transient(self) -> bool:
        return False

    def _deliver(self, data: bytes, room: int) -> None:
        self.uart.receive(data)
        if len(data) < room:
            # The host fd had no more: the line is idle, so the character timeout fires
            # for bytes below the FIFO trigger level.
            self.uart.tick()

    def _hangup(self) -> None:
        if not self.hung_up:
            self.hung_up = True
            log.info("%s: hung up", self.name)
            if self.on_hangup is not None:
                self.on_hangup()

    # --- teardown ------------------------------------------------------------------------
    def flush_now(self, timeout: float = 1.0) -> None:
        """Write out what is still buffered, best effort (at shutdown: the last lines
        of a system must not be lost because its pumps were cancelled first)."""
        import select
        while self._out and self.out_fd >= 0:
            try:
                n = os.write(self.out_fd, self._out[:65536])
            except BlockingIOError:
                if not select.select([], [self.out_fd], [], timeout)[1]:
                    return
                continue
            except OSError:
                return
            del self._out[:n]

    def _detach(self) -> None:
        if self.uart.transmit_sink == self._on_transmit:
            self.uart.transmit_sink = None
        if self.uart.on_rx_space == self._on_rx_space:
            self.uart.on_rx_space = None

    def close(self) -> None:
        self._detach()

    def __enter__(self) -> "FdLine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_fd(fd: int) -> None:
    if fd < 0:
        return
    try:
        trio.lowlevel.notify_closing(fd)  # wake a pump waiting on it
    except RuntimeError:
        pass  # not inside trio.run
    try:
        os.close(fd)
    except OSError:
        pass


class PtyLine(FdLine):
    """Attach ``uart``'s line side to a new host pty (the master is the wire)."""

    def __init__(self, uart: Uart16550, *, tx_buffer_limit: int = DEFAULT_TX_BUFFER_LIMIT) -> None:
        self.master_fd, self.slave_fd = os.openpty()
        self.slave_name: str = os.ttyname(self.slave_fd)
        self.name = self.slave_name
        tty.setraw(self.slave_fd)
        os.set_blocking(self.master_fd, False)
        super().__init__(uart, self.master_fd, self.master_fd, tx_buffer_limit=tx_buffer_limit)
        log.info("serial line on %s", self.slave_name)

    def winsize_fd(self) -> int:
        return self.master_fd

    def _eio_is_transient(self) -> bool:
        return True   # no slave open: cannot happen while we hold one

    def unread(self) -> int:
        """Bytes on the line that the attached terminal has not read yet."""
        try:
            return struct.unpack("i", fcntl.ioctl(self.slave_fd, termios.FIONREAD,
                                                  bytes(4)))[0]
        except OSError:
            return 0

    def close(self, linger: float = 0.5) -> None:
        """Close the pty.  Its last output is written first, and an attached terminal
        gets up to ``linger`` seconds to read it: closing the master hangs the slave
        up, which throws away what is still unread."""
        self._detach()
        if self.master_fd >= 0:
            self.flush_now(timeout=0.2)
            # What was just written may still be on its way to the slave (the pty moves
            # it in a kernel work item): FIONREAD sees it only after that has run.
            time.sleep(0.05)
            deadline = time.monotonic() + linger
            while self.unread() and time.monotonic() < deadline:
                time.sleep(0.01)
        for fd in (self.master_fd, self.slave_fd):
            _close_fd(fd)
        self.master_fd = self.slave_fd = self.in_fd = self.out_fd = -1

    def __enter__(self) -> "PtyLine":
        return self
