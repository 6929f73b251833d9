"""A register-level model of the 16550A UART: pure, synchronous, no I/O.

The CPU side is ``read(offset)`` / ``write(offset, value)`` exactly as a driver would do
port I/O, plus ``write_many`` (``rep outsb``).  The line side is ``transmit_sink`` (bytes
the chip shifts out), ``receive(data)`` (bytes arriving on the line), ``set_modem_inputs``
(CTS/DSR/RI/DCD pins) and ``tick()`` (time passing).  The interrupt line is ``irq`` and
listeners are told when it changes.

Simplifications, each deliberate:
- Framing (word length, parity, stop bits, break) is stored in LCR but not applied: a pty
  carries 8-bit bytes, so PE/FE/BI/RXFE never get set.
- Time is explicit.  With ``immediate_tx=True`` (the default, and what the pty line uses)
  the line is infinitely fast: a byte written to THR goes through the shift register to
  ``transmit_sink`` before ``write`` returns, so THRE/TEMT come back at once.  With
  ``immediate_tx=False`` the bytes wait in the TX FIFO and each ``tick()`` is one
  character time (one byte leaves the shift register, the next one is loaded).
- Character timeout: ``tick()`` marks the timeout pending when the RX FIFO holds bytes but
  fewer than the trigger level (the real chip waits four character times).
- A byte written to a full THR/TX FIFO is lost silently, and a byte arriving at a full
  RX FIFO (or RBR in 16450 mode) is dropped and sets LSR.OE.  (In 16450 mode the real chip
  lets the new byte overwrite RBR instead; the OE outcome is the same.)
- ``irq`` is the chip's INTR pin.  On a PC the board gates it with MCR.OUT2; that gate is
  not modelled here.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from . import regs as R

log = logging.getLogger(__name__)

IrqListener = Callable[[bool], None]
TransmitSink = Callable[[bytes], None]


class Uart16550:
    """One 16550A.  Not thread-safe: drive it from one thread (the trio thread)."""

    def __init__(self, transmit_sink: TransmitSink | None = None, *, immediate_tx: bool = True) -> None:
        # Called with the bytes shifted out on the line (one call per byte, or one call per
        # drained FIFO with immediate_tx).  Not called for bytes looped back in MCR.LOOP.
        self.transmit_sink = transmit_sink
        self.immediate_tx = immediate_tx
        # Line-side flow-control hook: called when RBR reads free space in a full RX FIFO,
        # so a host line can hold bytes back instead of overrunning (like RTS/CTS would).
        self.on_rx_space: Callable[[], None] | None = None
        self._irq_listeners: list[IrqListener] = []
        # Not touched by master reset on the real chip; 12 = 9600 baud, the BIOS default.
        self._divisor = 12
        self._scr = 0
        self._line_inputs = 0  # CTS/DSR/RI/DCD pins as MSR state bits
        self._rx: deque[int] = deque()
        self._tx: deque[int] = deque()
        self._fcr = 0  # only ENABLE, DMA and trigger bits are kept
        self.reset()

    # --- master reset ---------------------------------------------------------------
    def reset(self) -> None:
        """The MR pin: registers to their reset values; divisor and SCR are kept."""
        self._clear_rx()  # (tells a waiting line there is room again)
        self._tx.clear()
        self._ier = 0
        self._fcr = 0
        self._lcr = 0
        self._mcr = 0
        self._tsr: int | None = None  # transmit shift register
        self._last_rbr = 0
        self._lsr_errors = 0  # latched OE (PE/FE/BI unused), cleared by reading LSR
        self._timeout = False  # character timeout pending
        self._thre_pending = False  # THRE interrupt latched
        self._msr_state = self._effective_modem_inputs()
        self._msr_delta = 0
        self._irq = False
        self._update_irq()

    # --- properties the outside world sees ---------------------------------------------
    @property
    def irq(self) -> bool:
        """The interrupt line: asserted while an enabled interrupt is pending."""
        return self._irq

    @property
    def divisor(self) -> int:
        return self._divisor

    @property
    def baud(self) -> float:
        """115200 / divisor; 0.0 for divisor 0 (the baud generator stops)."""
        return R.BASE_BAUD / self._divisor if self._divisor else 0.0

    @property
    def fifo_enabled(self) -> bool:
        return bool(self._fcr & R.FCR_ENABLE)

    @property
    def loopback(self) -> bool:
        return bool(self._mcr & R.MCR_LOOP)

    @property
    def rx_trigger(self) -> int:
        return R.TRIGGER_LEVELS[self._fcr & R.FCR_TRIGGER_MASK] if self.fifo_enabled else 1

    @property
    def rx_capacity(self) -> int:
        return R.FIFO_SIZE if self.fifo_enabled else 1

    @property
    def rx_room(self) -> int:
        """How many more bytes ``receive`` would accept without overrun."""
        return self.rx_capacity - len(self._rx)

    @property
    def mcr_outputs(self) -> int:
        """DTR/RTS/OUT1/OUT2 as driven on the pins (all inactive in loopback)."""
        return 0 if self.loopback else self._mcr & (R.MCR_DTR | R.MCR_RTS | R.MCR_OUT1 | R.MCR_OUT2)

    def add_irq_listener(self, listener: IrqListener) -> None:
        """``listener(level)`` is called each time the interrupt line changes level."""
        self._irq_listeners.append(listener)

    def remove_irq_listener(self, listener: IrqListener) -> None:
        self._irq_listeners.remove(listener)

    # --- CPU side -----------------------------------------------------------------------
    def read(self, offset: int) -> int:
        self._check(offset, 0)
        dlab = self._lcr & R.LCR_DLAB
        if offset == R.RBR:
            value = self._divisor & 0xFF if dlab else self._read_rbr()
        elif offset == R.IER:
            value = self._divisor >> 8 if dlab else self._ier
        elif offset == R.IIR:
            value = self._read_iir()
        elif offset == R.LCR:
            value = self._lcr
        elif offset == R.MCR:
            value = self._mcr
        elif offset == R.LSR:
            value = self._lsr()
            self._lsr_errors = 0  # reading LSR clears the error bits (and the RLS interrupt)
        elif offset == R.MSR:
            value = self._msr_state | self._msr_delta
            self._msr_delta = 0
        else:
            value = self._scr
        self._update_irq()
        return value

    def write(self, offset: int, value: int) -> None:
        self._check(offset, value)
        dlab = self._lcr & R.LCR_DLAB
        if offset == R.THR:
            if dlab:
                self._divisor = (self._divisor & 0xFF00) | value
            else:
                self._write_thr(value)
        elif offset == R.IER:
            if dlab:
                self._divisor = (self._divisor & 0x00FF) | (value << 8)
            else:
                self._write_ier(value)
        elif offset == R.FCR:
            self._write_fcr(value)
        elif offset == R.LCR:
            self._lcr = value
        elif offset == R.MCR:
            self._mcr = value & R.MCR_MASK
            self._update_msr()  # loopback may have switched, or MCR looped outputs changed
        elif offset == R.SCR:
            self._scr = value
        else:
            # LSR and MSR writes are factory-test only on the real chip: ignored.
            log.debug("ignored write %#x to read-only register %d", value, offset)
        self._update_irq()

    def write_many(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """``rep outsb``: the same as ``write(offset, b)`` for each byte, in order.

        Writes of THR on an immediate, non-loopback line take a fast path with the same
        result: the whole buffer reaches ``transmit_sink`` in one call.
        """
        if (offset == R.THR and self.immediate_tx and not self._lcr & R.LCR_DLAB
                and not self.loopback and self._tsr is None and not self._tx):
            if not data:
                return
            # Each byte would: clear THRE, pass through THR and the shift register, leave
            # THR empty again (THRE latched).  The net effect is exactly this:
            self._thre_pending = True
            if self.transmit_sink is not None:
                self.transmit_sink(bytes(data))
            self._update_irq()
            return
        for b in bytes(data):
            self.write(offset, b)

    # --- line side ----------------------------------------------------------------------
    def receive(self, data: bytes | bytearray | memoryview) -> int:
        """Bytes arriving on the serial input.  Returns how many were stored.

        When the RX FIFO (or RBR in 16450 mode) is full the rest are dropped and LSR.OE is
        set, as on the real chip; a line that must not lose data offers at most
        ``rx_room`` bytes.  In loopback the serial input is disconnected: nothing is stored
        and OE is not set.
        """
        if self.loopback:
            return 0
        accepted = 0
        for b in bytes(data):
            if not self._rx_push(b):
                break
            accepted += 1
        if accepted < len(data):
            log.debug("RX overrun: %d byte(s) dropped", len(data) - accepted)
        self._update_irq()
        return accepted

    def set_modem_inputs(self, *, cts: bool | None = None, dsr: bool | None = None,
                         ri: bool | None = None, dcd: bool | None = None) -> None:
        """Drive the modem-status input pins (True = asserted); None leaves a pin as is."""
        for bit, level in ((R.MSR_CTS, cts), (R.MSR_DSR, dsr), (R.MSR_RI, ri), (R.MSR_DCD, dcd)):
            if level is not None:
                self._line_inputs = (self._line_inputs | bit) if level else (self._line_inputs & ~bit)
        self._update_msr()
        self._update_irq()

    def tick(self, chars: int = 1) -> None:
        """Let ``chars`` character times pass on the line.

        Each one shifts out one byte (when TX is not immediate); then, if the RX FIFO holds
        bytes below the trigger level, the character timeout becomes pending.
        """
        for _ in range(chars):
            if self._tsr is None:
                break
            self._shift_out_one()
        if self.fifo_enabled and 0 < len(self._rx) < self.rx_trigger:
            self._timeout = True
        self._update_irq()

    # --- internals --------------------------------------------------------------------
    @staticmethod
    def _check(offset: int, value: int) -> None:
        if not 0 <= offset < R.NUM_REGS:
            raise ValueError(f"16550 register offset out of range: {offset}")
        if not 0 <= value <= 0xFF:
            raise ValueError(f"16550 registers are 8 bits wide: {value}")

    def _read_rbr(self) -> int:
        if self._rx:
            was_full = len(self._rx) >= self.rx_capacity
            self._last_rbr = self._rx.popleft()
            if was_full and self.on_rx_space is not None:
                self.on_rx_space()
        # A read, even of an empty FIFO, restarts the timeout timer and clears the interrupt.
        self._timeout = False
        return self._last_rbr

    def _read_iir(self) -> int:
        code = self._pending_interrupt()
        if code == R.IIR_THRE:
            # Reading IIR while it shows THRE acknowledges that interrupt.
            self._thre_pending = False
        return code | (R.IIR_FIFO_ENABLED if self.fifo_enabled else 0)

    def _pending_interrupt(self) -> int:
        """The IIR code of the highest-priority enabled interrupt, or IIR_NO_INT."""
        ier = self._ier
        if ier & R.IER_ELSI and self._lsr_errors:
            return R.IIR_RLS
        if ier & R.IER_ERBFI:
            n = len(self._rx)
            if n and n >= self.rx_trigger:
                return R.IIR_RDA
            if self._timeout:
                return R.IIR_CTI
        if ier & R.IER_ETBEI and self._thre_pending:
            return R.IIR_THRE
        if ier & R.IER_EDSSI and self._msr_delta:
            return R.IIR_MSR
        return R.IIR_NO_INT

    def _lsr(self) -> int:
        value = self._lsr_errors
        if self._rx:
            value |= R.LSR_DR
        if not self._tx:
            value |= R.LSR_THRE
            if self._tsr is None:
                value |= R.LSR_TEMT
        return value

    def _write_ier(self, value: int) -> None:
        old, self._ier = self._ier, value & R.IER_MASK
        # Enabling ETBEI while THR is empty raises the THRE interrupt at once (drivers
        # rely on this to start transmission).
        if self._ier & ~old & R.IER_ETBEI and not self._tx:
            self._thre_pending = True

    def _write_fcr(self, value: int) -> None:
        enable = value & R.FCR_ENABLE
        if enable != (self._fcr & R.FCR_ENABLE):
            # Switching between 16450 and FIFO mode clears both FIFOs.
            self._clear_rx()
            self._clear_tx()
        if not enable:
            self._fcr = 0  # the other FCR bits are only programmed together with ENABLE
            return
        if value & R.FCR_CLEAR_RX:
            self._clear_rx()
        if value & R.FCR_CLEAR_TX:
            self._clear_tx()
        self._fcr = value & (R.FCR_ENABLE | R.FCR_DMA_MODE | R.FCR_TRIGGER_MASK)

    def _clear_rx(self) -> None:
        was_full = len(self._rx) >= self.rx_capacity
        self._rx.clear()
        self._timeout = False
        if was_full and self.on_rx_space is not None:
            self.on_rx_space()

    def _clear_tx(self) -> None:
        # The shift register is not cleared: a byte already shifting out finishes.
        if self._tx:
            self._tx.clear()
            self._thre_pending = True

    def _write_thr(self, value: int) -> None:
        self._thre_pending = False  # writing THR acknowledges the THRE interrupt
        if len(self._tx) >= (R.FIFO_SIZE if self.fifo_enabled else 1):
            log.debug("TX FIFO full: byte %#x lost", value)
            return
        self._tx.append(value)
        self._load_tsr()
        if self.immediate_tx:
            self._shift_out_all()

    def _load_tsr(self) -> None:
        """Move the next byte from THR/TX FIFO into an idle shift register."""
        if self._tsr is None and self._tx:
            self._tsr = self._tx.popleft()
            if not self._tx:
                self._thre_pending = True  # THR just became empty

    def _shift_out_one(self) -> None:
        assert self._tsr is not None
        byte, self._tsr = self._tsr, None
        self._emit(bytes((byte,)))
        self._load_tsr()

    def _shift_out_all(self) -> None:
        out = bytearray()
        while self._tsr is not None:
            out.append(self._tsr)
            self._tsr = None
            self._load_tsr()
        if out:
            self._emit(bytes(out))

    def _emit(self, data: bytes) -> None:
        if self.loopback:
            for b in data:  # the transmitter is wired to the receiver
                self._rx_push(b)
        elif self.transmit_sink is not None:
            self.transmit_sink(data)

    def _rx_push(self, byte: int) -> bool:
        if len(self._rx) >= self.rx_capacity:
            self._lsr_errors |= R.LSR_OE
            return False
        self._rx.append(byte)
        return True

    def _effective_modem_inputs(self) -> int:
        if not self._mcr & R.MCR_LOOP:
            return self._line_inputs
        # Loopback wires the MCR outputs to the MSR inputs inside the chip.
        mcr, state = self._mcr, 0
        for out_bit, in_bit in ((R.MCR_RTS, R.MSR_CTS), (R.MCR_DTR, R.MSR_DSR),
                                (R.MCR_OUT1, R.MSR_RI), (R.MCR_OUT2, R.MSR_DCD)):
            if mcr & out_bit:
                state |= in_bit
        return state

    def _update_msr(self) -> None:
        new = self._effective_modem_inputs()
        old, self._msr_state = self._msr_state, new
        changed = old ^ new
        self._msr_delta |= (changed & (R.MSR_CTS | R.MSR_DSR | R.MSR_DCD)) >> 4
        if old & R.MSR_RI and not new & R.MSR_RI:
            self._msr_delta |= R.MSR_TERI

    def _update_irq(self) -> None:
        level = self._pending_interrupt() != R.IIR_NO_INT
        if level != self._irq:
            self._irq = level
            for listener in list(self._irq_listeners):
                listener(level)
