"""The console driver: talks to a ``Uart16550`` only through its registers.

Output is polled, like a kernel's serial console: wait for LSR.THRE, then write up to a
FIFO's worth (16 bytes) into THR with one ``rep outsb``.  On the pty line the chip drains
its FIFO into the line at once, so THRE is already back at the next check and a megabyte
costs 65536 short bursts, not a million waits.

Input is interrupt-driven: the driver enables the receive interrupts, the chip's irq
listener sets a trio Event, and ``read_some`` services the interrupt (reads IIR, drains
RBR while LSR.DR) like an interrupt handler would.

Everything here runs on the trio thread; ``write`` is synchronous so the kernel's
``debug_write`` can call it from anywhere on that thread.
"""
from __future__ import annotations

import logging

import trio

from . import regs as R
from .uart16550 import Uart16550

log = logging.getLogger(__name__)


class Console:
    """A polled-output, interrupt-input driver for one UART."""

    def __init__(self, uart: Uart16550, *, divisor: int = 1, rx_trigger: int = R.FCR_TRIGGER_8,
                 onlcr: bool = False, poll_limit: int = 1000) -> None:
        """``divisor`` 1 = 115200 baud, 8N1.  ``onlcr`` turns "\\n" into "\\r\\n" on output
        (for a raw line read by a terminal).  ``poll_limit`` bounds the THRE busy-wait:
        after that many LSR reads the driver writes anyway, as Linux's serial console
        does, rather than hang on a stuck transmitter."""
        self.uart = uart
        self.onlcr = onlcr
        self.poll_limit = poll_limit
        self.overruns = 0  # LSR.OE seen: input was lost before we read it
        self._rxbuf = bytearray()
        self._rx_event = trio.Event()
        self._warned_stuck = False
        self.fifo_size = self._init_chip(divisor, rx_trigger)
        uart.add_irq_listener(self._on_irq)

    def _init_chip(self, divisor: int, rx_trigger: int) -> int:
        u = self.uart
        u.write(R.IER, 0)
        u.write(R.LCR, R.LCR_DLAB)
        u.write(R.DLL, divisor & 0xFF)
        u.write(R.DLM, (divisor >> 8) & 0xFF)
        u.write(R.LCR, R.LCR_WLEN8)
        u.write(R.FCR, R.FCR_ENABLE | R.FCR_CLEAR_RX | R.FCR_CLEAR_TX | rx_trigger)
        # Probe the FIFO like a driver: IIR bits 7:6 both set means a working 16550A.
        fifo = R.FIFO_SIZE if u.read(R.IIR) & R.IIR_FIFO_ENABLED == R.IIR_FIFO_ENABLED else 1
        u.write(R.MCR, R.MCR_DTR | R.MCR_RTS | R.MCR_OUT2)
        for reg in (R.LSR, R.RBR, R.IIR, R.MSR):  # clear anything stale
            u.read(reg)
        u.write(R.IER, R.IER_ERBFI | R.IER_ELSI)
        log.debug("console: %.0f baud, fifo %d", u.baud, fifo)
        return fifo

    def close(self) -> None:
        """Detach from the chip's interrupt line and mask its interrupts."""
        self.uart.remove_irq_listener(self._on_irq)
        self.uart.write(R.IER, 0)

    # --- output -------------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Send ``data`` through THR; returns len(data)."""
        n = len(data)
        if self.onlcr:
            data = bytes(data).replace(b"\n", b"\r\n")
        view = memoryview(data).cast("B")
        u, burst = self.uart, self.fifo_size
        for start in range(0, len(view), burst):
            self._wait_thre()
            u.write_many(R.THR, view[start:start + burst])
        return n

    def _wait_thre(self) -> None:
        read = self.uart.read
        for _ in range(self.poll_limit):
            if read(R.LSR) & R.LSR_THRE:
                return
        if not self._warned_stuck:
            log.warning("console: transmitter stuck (THRE never set); writing anyway")
            self._warned_stuck = True

    # --- input --------------------------------------------------------------------------
    def _on_irq(self, level: bool) -> None:
        # The "interrupt": just wake the reader; the chip state is read in task context.
        if level:
            self._rx_event.set()

    def _service(self) -> None:
        """The interrupt handler: acknowledge every pending source, collect input."""
        u = self.uart
        for _ in range(8):  # bounded, like real handlers, against a stuck source
            iir = u.read(R.IIR)
            if iir & R.IIR_NO_INT:
                break
            code = iir & R.IIR_ID_MASK
            if code in (R.IIR_RDA, R.IIR_CTI):
                self._drain()
            elif code == R.IIR_RLS:
                self._note_lsr(u.read(R.LSR))
            elif code == R.IIR_MSR:
                u.read(R.MSR)
            # IIR_THRE: reading IIR acknowledged it.
        self._drain()

    def _drain(self) -> None:
        u = self.uart
        while True:
            lsr = u.read(R.LSR)
            self._note_lsr(lsr)
            if not lsr & R.LSR_DR:
                return
            self._rxbuf.append(u.read(R.RBR))

    def _note_lsr(self, lsr: int) -> None:
        if lsr & R.LSR_OE:
            self.overruns += 1
            log.warning("console: receive overrun, input lost")

    def _take(self, max_bytes: int) -> bytes:
        data = bytes(self._rxbuf[:max_bytes])
        del self._rxbuf[:max_bytes]
        return data

    def read_nowait(self, max_bytes: int = 4096) -> bytes:
        """Whatever has been received so far (possibly b"")."""
        self._service()
        return self._take(max_bytes)

    async def read_some(self, max_bytes: int = 4096) -> bytes:
        """Wait for the receive interrupt and return 1..max_bytes received bytes.

        One reader at a time.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            self._service()
            if self._rxbuf:
                data = self._take(max_bytes)
                await trio.lowlevel.cancel_shielded_checkpoint()
                return data
            self._rx_event = trio.Event()
            if self.uart.irq:
                # Still asserted by a source we cannot clear: don't wait for an edge.
                await trio.sleep(0.01)
                continue
            await self._rx_event.wait()
