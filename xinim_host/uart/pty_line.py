"""The serial line of a ``Uart16550``, made of a host pty.

The pty master is the wire: bytes the chip transmits are written to the master, bytes
readable on the master arrive at the chip's serial input.  Someone attaches to the slave
(``self.slave_name``, e.g. ``/dev/pts/3``) with ``screen`` or ``picocom``, as to a real
serial port.

Why the slave is put in raw mode and kept open here:
- Its line discipline sits between the wire and the attached terminal program; with echo
  on, every byte the chip sent would be echoed back into the chip's receiver.
- While no slave fd is open, reads of the master fail with EIO; holding one keeps the
  line "connected" whether or not anyone is attached.

Flow: the chip runs with ``immediate_tx`` (an infinitely fast line), so THRE comes back at
once and a driver never waits.  Transmitted bytes are buffered here and flushed by
``run()``; if nobody drains the slave the buffer is capped and the oldest bytes are
dropped (a real serial line loses what nobody listens to).  In the other direction
``run()`` only reads as many bytes from the master as the RX FIFO has room for, so typed or
pasted input waits in the pty instead of overrunning the FIFO (hardware flow control).
"""
from __future__ import annotations

import errno
import logging
import os
import tty

import trio

from xinim_host.uart.uart16550 import Uart16550

log = logging.getLogger(__name__)

DEFAULT_TX_BUFFER_LIMIT = 4 * 1024 * 1024


class PtyLine:
    """Attach ``uart``'s line side to a new host pty."""

    def __init__(self, uart: Uart16550, *, tx_buffer_limit: int = DEFAULT_TX_BUFFER_LIMIT) -> None:
        self.uart = uart
        self.tx_buffer_limit = tx_buffer_limit
        self.master_fd, self.slave_fd = os.openpty()
        self.slave_name: str = os.ttyname(self.slave_fd)
        tty.setraw(self.slave_fd)
        os.set_blocking(self.master_fd, False)
        self._out = bytearray()
        self._out_ready = trio.Event()
        self._rx_space = trio.Event()
        self.tx_dropped = 0  # bytes lost because the buffer limit was hit
        uart.immediate_tx = True
        uart.transmit_sink = self._on_transmit
        uart.on_rx_space = self._on_rx_space
        # A cable is plugged in: the other end asserts its modem outputs.
        uart.set_modem_inputs(cts=True, dsr=True, dcd=True, ri=False)
        log.info("serial line on %s", self.slave_name)

    # --- chip callbacks (synchronous, on the trio thread) ------------------------------
    def _on_transmit(self, data: bytes) -> None:
        self._out += data
        excess = len(self._out) - self.tx_buffer_limit
        if excess > 0:
            if not self.tx_dropped:
                log.warning("%s: nobody reads the line; dropping old output", self.slave_name)
            del self._out[:excess]
            self.tx_dropped += excess
        self._out_ready.set()

    def _on_rx_space(self) -> None:
        self._rx_space.set()

    @property
    def tx_backlog(self) -> int:
        """Bytes transmitted by the chip but not yet written to the pty."""
        return len(self._out)

    # --- the pumps -----------------------------------------------------------------------
    async def run(self) -> None:
        """Move bytes between the chip and the pty until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._tx_pump)
            nursery.start_soon(self._rx_pump)

    async def _tx_pump(self) -> None:
        while True:
            if not self._out:
                self._out_ready = trio.Event()
                await self._out_ready.wait()
            try:
                n = os.write(self.master_fd, self._out[:65536])
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.master_fd)
                continue
            del self._out[:n]
            await trio.lowlevel.checkpoint()

    async def _rx_pump(self) -> None:
        while True:
            if self.uart.rx_room == 0:
                self._rx_space = trio.Event()
                await self._rx_space.wait()
                continue
            await trio.lowlevel.wait_readable(self.master_fd)
            room = self.uart.rx_room
            if room == 0:
                continue
            try:
                data = os.read(self.master_fd, room)
            except BlockingIOError:
                continue
            except OSError as exc:  # EIO: no slave open (cannot happen while we hold one)
                if exc.errno != errno.EIO:
                    raise
                await trio.sleep(0.05)
                continue
            self.uart.receive(data)
            if len(data) < room:
                # The pty had no more: the line is idle, so the character timeout fires
                # for bytes below the FIFO trigger level.
                self.uart.tick()

    # --- teardown ------------------------------------------------------------------------
    def close(self) -> None:
        if self.uart.transmit_sink == self._on_transmit:
            self.uart.transmit_sink = None
        if self.uart.on_rx_space == self._on_rx_space:
            self.uart.on_rx_space = None
        for fd in (self.master_fd, self.slave_fd):
            if fd < 0:
                continue
            try:
                trio.lowlevel.notify_closing(fd)  # wake a pump waiting on it
            except RuntimeError:
                pass  # not inside trio.run
            try:
                os.close(fd)
            except OSError:
                pass
        self.master_fd = self.slave_fd = -1

    def __enter__(self) -> PtyLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
