"""Register-level tests of the 16550A model (no I/O)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xinim_host.uart import regs as R
from xinim_host.uart.console import Console
from xinim_host.uart.uart16550 import Uart16550


class Line:
    """Collects what the chip transmits."""

    def __init__(self) -> None:
        self.out = bytearray()

    def __call__(self, data: bytes) -> None:
        self.out += data


def make(*, fifo: bool = True, immediate: bool = True, trigger: int = R.FCR_TRIGGER_1) -> tuple[Uart16550, Line]:
    line = Line()
    u = Uart16550(line, immediate_tx=immediate)
    if fifo:
        u.write(R.FCR, R.FCR_ENABLE | trigger)
    return u, line


def iir_id(u: Uart16550) -> int:
    return u.read(R.IIR) & 0x0F


# --- reset state, offsets, scratch ---------------------------------------------------------
def test_reset_values() -> None:
    u = Uart16550()
    assert u.read(R.IER) == 0
    assert u.read(R.IIR) == R.IIR_NO_INT  # no FIFO bits: 16450 mode after reset
    assert u.read(R.LCR) == 0
    assert u.read(R.MCR) == 0
    assert u.read(R.LSR) == R.LSR_THRE | R.LSR_TEMT
    assert u.read(R.MSR) == 0
    assert not u.irq


def test_scratch_register() -> None:
    u = Uart16550()
    for v in (0x00, 0x55, 0xAA, 0xFF):
        u.write(R.SCR, v)
        assert u.read(R.SCR) == v
    u.reset()
    assert u.read(R.SCR) == 0xFF  # master reset leaves SCR alone


def test_bad_offset_and_value() -> None:
    u = Uart16550()
    with pytest.raises(ValueError):
        u.read(8)
    with pytest.raises(ValueError):
        u.write(-1, 0)
    with pytest.raises(ValueError):
        u.write(R.SCR, 256)


def test_ier_upper_bits_read_zero() -> None:
    u = Uart16550()
    u.write(R.IER, 0xFF)
    assert u.read(R.IER) == 0x0F


def test_lsr_msr_writes_ignored() -> None:
    u = Uart16550()
    u.write(R.LSR, 0xFF)
    u.write(R.MSR, 0xFF)
    assert u.read(R.LSR) == R.LSR_THRE | R.LSR_TEMT
    assert u.read(R.MSR) == 0


# --- divisor latch ---------------------------------------------------------------------
def test_divisor_latch_under_dlab() -> None:
    u = Uart16550()
    u.write(R.IER, R.IER_ERBFI)
    u.write(R.LCR, R.LCR_DLAB | R.LCR_WLEN8)
    u.write(R.DLL, 0x34)
    u.write(R.DLM, 0x12)
    assert u.read(R.DLL) == 0x34
    assert u.read(R.DLM) == 0x12
    assert u.divisor == 0x1234
    assert u.read(R.LCR) == R.LCR_DLAB | R.LCR_WLEN8
    # With DLAB off the same offsets are RBR/THR and IER again, untouched by the above.
    u.write(R.LCR, R.LCR_WLEN8)
    assert u.read(R.IER) == R.IER_ERBFI
    assert u.divisor == 0x1234


def test_dlab_write_does_not_transmit() -> None:
    u, line = make()
    u.write(R.LCR, R.LCR_DLAB)
    u.write(R.THR, 0x41)
    assert line.out == b""
    assert u.divisor & 0xFF == 0x41


@pytest.mark.parametrize("divisor,baud", [(1, 115200.0), (3, 38400.0), (12, 9600.0), (0x0180, 300.0)])
def test_baud_rate(divisor: int, baud: float) -> None:
    u = Uart16550()
    u.write(R.LCR, R.LCR_DLAB)
    u.write(R.DLL, divisor & 0xFF)
    u.write(R.DLM, divisor >> 8)
    assert u.baud == baud


def test_baud_rate_divisor_zero() -> None:
    u = Uart16550()
    u.write(R.LCR, R.LCR_DLAB)
    u.write(R.DLL, 0)
    u.write(R.DLM, 0)
    assert u.baud == 0.0


# --- transmitter: THR, TX FIFO, THRE/TEMT ---------------------------------------------------
def test_immediate_tx_reaches_sink_and_thre_temt_stay_set() -> None:
    u, line = make()
    for b in b"hello":
        u.write(R.THR, b)
        assert u.read(R.LSR) & (R.LSR_THRE | R.LSR_TEMT) == R.LSR_THRE | R.LSR_TEMT
    assert line.out == b"hello"


def test_tx_fifo_fill_and_drain() -> None:
    u, line = make(immediate=False)
    assert u.read(R.LSR) & (R.LSR_THRE | R.LSR_TEMT) == R.LSR_THRE | R.LSR_TEMT
    u.write(R.THR, 0)
    # The first byte moves straight into the shift register: THR empty, TEMT not.
    assert u.read(R.LSR) & (R.LSR_THRE | R.LSR_TEMT) == R.LSR_THRE
    for b in range(1, 17):  # 16 more fill the FIFO
        u.write(R.THR, b)
        assert not u.read(R.LSR) & (R.LSR_THRE | R.LSR_TEMT)
    u.write(R.THR, 99)  # FIFO full: lost
    assert line.out == b""
    for i in range(15):
        u.tick()
        assert line.out == bytes(range(i + 1))
        assert not u.read(R.LSR) & R.LSR_THRE
    u.tick()  # byte 16 leaves the FIFO for the shift register: FIFO empty
    assert line.out == bytes(range(16))
    assert u.read(R.LSR) & (R.LSR_THRE | R.LSR_TEMT) == R.LSR_THRE
    u.tick()
    assert line.out == bytes(range(17))
    assert u.read(R.LSR) & (R.LSR_THRE | R.LSR_TEMT) == R.LSR_THRE | R.LSR_TEMT


def test_non_fifo_mode_has_one_byte_thr() -> None:
    u, line = make(fifo=False, immediate=False)
    u.write(R.THR, 1)  # -> shift register
    u.write(R.THR, 2)  # -> THR
    assert not u.read(R.LSR) & R.LSR_THRE
    u.write(R.THR, 3)  # THR full: lost
    u.tick(5)
    assert line.out == b"\x01\x02"


def test_write_many_same_as_single_writes() -> None:
    u1, l1 = make()
    u2, l2 = make()
    data = bytes(range(40))
    u1.write_many(R.THR, data)
    for b in data:
        u2.write(R.THR, b)
    assert l1.out == l2.out == data
    assert u1.read(R.LSR) == u2.read(R.LSR)


def test_write_many_slow_path_respects_fifo() -> None:
    u, line = make(immediate=False)
    u.write_many(R.THR, bytes(range(20)))  # 1 in TSR + 16 in FIFO, 3 lost
    u.tick(30)
    assert line.out == bytes(range(17))


# --- receiver: RX FIFO, DR, OE --------------------------------------------------------------
def test_rx_fifo_fill_and_drain() -> None:
    u, _ = make()
    assert not u.read(R.LSR) & R.LSR_DR
    assert u.receive(bytes(range(16))) == 16
    assert u.rx_room == 0
    for i in range(16):
        assert u.read(R.LSR) & R.LSR_DR
        assert u.read(R.RBR) == i
    assert not u.read(R.LSR) & R.LSR_DR
    assert u.read(R.RBR) == 15  # empty FIFO: RBR keeps the last byte


def test_overrun_drops_and_sets_oe_cleared_on_lsr_read() -> None:
    u, _ = make()
    assert u.receive(bytes(range(20))) == 16
    lsr = u.read(R.LSR)
    assert lsr & R.LSR_OE and lsr & R.LSR_DR
    assert not u.read(R.LSR) & R.LSR_OE  # cleared by the read
    assert bytes(u.read(R.RBR) for _ in range(16)) == bytes(range(16))  # the excess was dropped


def test_overrun_in_16450_mode() -> None:
    u, _ = make(fifo=False)
    assert u.receive(b"ab") == 1
    assert u.read(R.LSR) & (R.LSR_OE | R.LSR_DR) == R.LSR_OE | R.LSR_DR
    assert u.read(R.RBR) == ord("a")


def test_partial_receive_then_more() -> None:
    u, _ = make()
    assert u.receive(b"x" * 10) == 10
    assert u.rx_room == 6
    assert u.receive(b"y" * 10) == 6


@settings(max_examples=60)
@given(st.lists(st.one_of(st.binary(min_size=0, max_size=20), st.integers(0, 20)), max_size=30))
def test_rx_fifo_order_property(ops: list[bytes | int]) -> None:
    """Whatever mix of arrivals and reads: bytes come out in order, none invented, and a
    byte is lost only with OE reported."""
    u, _ = make()
    sent, got = bytearray(), bytearray()
    oe_seen = False
    for op in ops:
        if isinstance(op, bytes):
            n = u.receive(op)
            assert n == min(len(op), 16 - (len(sent) - len(got)))
            sent += op[:n]
            if n < len(op):
                oe_seen = True
        else:
            for _ in range(op):
                lsr = u.read(R.LSR)
                if lsr & R.LSR_OE:
                    assert oe_seen
                    oe_seen = False
                if not lsr & R.LSR_DR:
                    break
                got.append(u.read(R.RBR))
    while u.read(R.LSR) & R.LSR_DR:
        got.append(u.read(R.RBR))
    assert got == sent


# --- FCR -------------------------------------------------------------------------------------
def test_fcr_resets() -> None:
    u, line = make(immediate=False)
    u.receive(b"abc")
    u.write_many(R.THR, b"0123")  # '0' in the shift register, "123" in the FIFO
    u.write(R.FCR, R.FCR_ENABLE | R.FCR_CLEAR_RX)
    assert not u.read(R.LSR) & R.LSR_DR
    assert not u.read(R.LSR) & R.LSR_THRE  # TX untouched
    u.write(R.FCR, R.FCR_ENABLE | R.FCR_CLEAR_TX)
    assert u.read(R.LSR) & (R.LSR_THRE | R.LSR_TEMT) == R.LSR_THRE  # shift register not cleared
    u.tick(10)
    assert line.out == b"0"
    assert u.fifo_enabled


def test_fcr_enable_toggle_clears_fifos_and_iir_bits() -> None:
    u, _ = make()
    assert u.read(R.IIR) & R.IIR_FIFO_ENABLED == R.IIR_FIFO_ENABLED
    u.receive(b"abc")
    u.write(R.FCR, 0)
    assert not u.fifo_enabled
    assert u.read(R.IIR) & R.IIR_FIFO_ENABLED == 0
    assert not u.read(R.LSR) & R.LSR_DR
    assert u.rx_capacity == 1


def test_fcr_other_bits_need_enable() -> None:
    u = Uart16550()
    u.write(R.FCR, R.FCR_TRIGGER_14)  # ENABLE clear: not programmed
    assert not u.fifo_enabled and u.rx_trigger == 1
    u.write(R.FCR, R.FCR_ENABLE | R.FCR_TRIGGER_14)
    assert u.rx_trigger == 14


@pytest.mark.parametrize("bits,level", [(R.FCR_TRIGGER_1, 1), (R.FCR_TRIGGER_4, 4),
                                        (R.FCR_TRIGGER_8, 8), (R.FCR_TRIGGER_14, 14)])
def test_rx_trigger_levels(bits: int, level: int) -> None:
    u, _ = make(trigger=bits)
    u.write(R.IER, R.IER_ERBFI)
    u.receive(b"x" * (level - 1))
    assert not u.irq
    assert iir_id(u) == R.IIR_NO_INT
    u.receive(b"x")
    assert u.irq
    assert iir_id(u) == R.IIR_RDA
    u.read(R.RBR)  # below the trigger again
    assert iir_id(u) == R.IIR_NO_INT


def test_character_timeout() -> None:
    u, _ = make(trigger=R.FCR_TRIGGER_8)
    u.write(R.IER, R.IER_ERBFI)
    u.receive(b"abc")
    assert not u.irq
    u.tick()
    assert u.irq and iir_id(u) == R.IIR_CTI
    assert u.read(R.IIR) & 0xC0 == 0xC0
    assert u.read(R.RBR) == ord("a")  # a read clears the timeout
    assert not u.irq
    u.tick()
    assert iir_id(u) == R.IIR_CTI
    u.read(R.RBR)
    u.read(R.RBR)
    u.tick()  # FIFO empty: no timeout
    assert iir_id(u) == R.IIR_NO_INT


def test_no_timeout_in_16450_mode() -> None:
    u, _ = make(fifo=False)
    u.write(R.IER, R.IER_ERBFI)
    u.receive(b"a")
    assert iir_id(u) == R.IIR_RDA
    u.tick()
    u.read(R.RBR)
    assert iir_id(u) == R.IIR_NO_INT


# --- THRE interrupt ----------------------------------------------------------------------
def test_thre_interrupt_on_enable_and_cleared_by_iir_read() -> None:
    u, _ = make()
    u.write(R.IER, R.IER_ETBEI)
    assert u.irq
    assert iir_id(u) == R.IIR_THRE
    assert not u.irq  # reading IIR while it showed THRE acknowledged it
    assert iir_id(u) == R.IIR_NO_INT


def test_thre_interrupt_cleared_by_thr_write_and_raised_when_empty_again() -> None:
    u, line = make(immediate=False)
    u.write(R.IER, R.IER_ETBEI)
    u.write_many(R.THR, b"ab")  # 'a' -> shift register, 'b' waits in the FIFO
    assert not u.irq
    u.tick()  # 'a' leaves, 'b' moves to the shift register: FIFO empty
    assert u.irq and iir_id(u) == R.IIR_THRE
    assert line.out == b"a"


def test_thre_not_acknowledged_when_higher_priority_shown() -> None:
    u, _ = make()
    u.write(R.IER, R.IER_ETBEI | R.IER_ERBFI)
    u.receive(b"z")
    assert iir_id(u) == R.IIR_RDA  # shown instead of THRE, which stays pending
    u.read(R.RBR)
    assert iir_id(u) == R.IIR_THRE


# --- IIR priorities ---------------------------------------------------------------------
def test_iir_priority_order() -> None:
    u, _ = make(trigger=R.FCR_TRIGGER_1)
    u.set_modem_inputs(cts=True)  # modem status delta
    u.receive(b"x" * 17)  # data available + overrun
    u.write(R.IER, R.IER_ERBFI | R.IER_ETBEI | R.IER_ELSI | R.IER_EDSSI)  # + THRE
    assert u.irq
    assert u.read(R.IIR) == R.IIR_FIFO_ENABLED | R.IIR_RLS
    u.read(R.LSR)  # clears OE
    assert iir_id(u) == R.IIR_RDA
    while u.read(R.LSR) & R.LSR_DR:
        u.read(R.RBR)
    assert iir_id(u) == R.IIR_THRE  # and this read acknowledges it
    assert iir_id(u) == R.IIR_MSR
    assert u.read(R.MSR) == R.MSR_CTS | R.MSR_DCTS
    assert iir_id(u) == R.IIR_NO_INT
    assert not u.irq


def test_timeout_ranks_with_received_data() -> None:
    u, _ = make(trigger=R.FCR_TRIGGER_4)
    u.write(R.IER, R.IER_ERBFI | R.IER_ETBEI)
    u.receive(b"ab")
    u.tick()
    assert iir_id(u) == R.IIR_CTI  # above THRE
    u.receive(b"cd")
    assert iir_id(u) == R.IIR_RDA  # at the trigger level RDA is reported


def test_disabled_sources_are_not_reported() -> None:
    u, _ = make()
    u.receive(b"x" * 17)
    u.set_modem_inputs(dcd=True)
    assert iir_id(u) == R.IIR_NO_INT
    assert not u.irq


def test_irq_listener_sees_edges() -> None:
    u, _ = make()
    seen: list[bool] = []
    u.add_irq_listener(seen.append)
    u.write(R.IER, R.IER_ERBFI)
    u.receive(b"a")
    u.receive(b"b")  # already asserted: no new edge
    u.read(R.RBR)
    u.read(R.RBR)
    assert seen == [True, False]
    u.remove_irq_listener(seen.append)
    u.receive(b"c")
    assert seen == [True, False]


# --- MCR / MSR / loopback ---------------------------------------------------------------
def test_mcr_read_back_masked() -> None:
    u = Uart16550()
    u.write(R.MCR, 0xFF)
    assert u.read(R.MCR) == 0x1F


def test_msr_inputs_and_deltas_cleared_on_read() -> None:
    u = Uart16550()
    u.set_modem_inputs(cts=True, dsr=True, dcd=True)
    assert u.read(R.MSR) == R.MSR_CTS | R.MSR_DSR | R.MSR_DCD | R.MSR_DCTS | R.MSR_DDSR | R.MSR_DDCD
    assert u.read(R.MSR) == R.MSR_CTS | R.MSR_DSR | R.MSR_DCD
    u.set_modem_inputs(ri=True)
    assert u.read(R.MSR) & R.MSR_DELTAS == 0  # RI rising: no TERI
    u.set_modem_inputs(ri=False)
    assert u.read(R.MSR) & R.MSR_DELTAS == R.MSR_TERI  # trailing edge
    u.set_modem_inputs(cts=False)
    assert u.read(R.MSR) == R.MSR_DSR | R.MSR_DCD | R.MSR_DCTS


def test_modem_status_interrupt() -> None:
    u = Uart16550()
    u.write(R.IER, R.IER_EDSSI)
    u.set_modem_inputs(dcd=True)
    assert u.irq and iir_id(u) == R.IIR_MSR
    u.read(R.MSR)
    assert not u.irq


def test_loopback_echoes_thr_into_rbr() -> None:
    u, line = make()
    u.write(R.MCR, R.MCR_LOOP)
    u.write(R.IER, R.IER_ERBFI)
    for b in b"loop":
        u.write(R.THR, b)
    assert line.out == b""  # nothing on the wire
    assert u.irq
    got = bytearray()
    while u.read(R.LSR) & R.LSR_DR:
        got.append(u.read(R.RBR))
    assert got == b"loop"
    assert u.read(R.LSR) & (R.LSR_THRE | R.LSR_TEMT) == R.LSR_THRE | R.LSR_TEMT


def test_loopback_overrun_and_write_many() -> None:
    u, line = make()
    u.write(R.MCR, R.MCR_LOOP)
    u.write_many(R.THR, bytes(range(20)))
    assert u.read(R.LSR) & R.LSR_OE
    assert bytes(u.read(R.RBR) for _ in range(16)) == bytes(range(16))
    assert line.out == b""


def test_loopback_deferred_tx_arrives_on_tick() -> None:
    u, _ = make(immediate=False)
    u.write(R.MCR, R.MCR_LOOP)
    u.write(R.THR, 0x42)
    assert not u.read(R.LSR) & R.LSR_DR
    u.tick()
    assert u.read(R.LSR) & R.LSR_DR and u.read(R.RBR) == 0x42


def test_loopback_disconnects_line_input() -> None:
    u, _ = make()
    u.write(R.MCR, R.MCR_LOOP)
    assert u.receive(b"from the line") == 0
    assert u.read(R.LSR) & (R.LSR_DR | R.LSR_OE) == 0


@pytest.mark.parametrize("out_bit,in_bit", [(R.MCR_RTS, R.MSR_CTS), (R.MCR_DTR, R.MSR_DSR),
                                            (R.MCR_OUT1, R.MSR_RI), (R.MCR_OUT2, R.MSR_DCD)])
def test_loopback_mcr_to_msr(out_bit: int, in_bit: int) -> None:
    u = Uart16550()
    u.set_modem_inputs(cts=True, dsr=True, ri=True, dcd=True)  # the line, ignored in loopback
    u.write(R.MCR, R.MCR_LOOP)
    u.read(R.MSR)  # clear the deltas of entering loopback
    assert u.read(R.MSR) & R.MSR_STATES == 0
    u.write(R.MCR, R.MCR_LOOP | out_bit)
    msr = u.read(R.MSR)
    assert msr & R.MSR_STATES == in_bit
    # Rising edge: a delta for CTS/DSR/DCD, none for RI (TERI is the falling edge).
    assert msr & R.MSR_DELTAS == (0 if in_bit == R.MSR_RI else in_bit >> 4)
    u.write(R.MCR, R.MCR_LOOP)
    assert u.read(R.MSR) & R.MSR_DELTAS == (R.MSR_TERI if in_bit == R.MSR_RI else in_bit >> 4)
    assert u.mcr_outputs == 0  # outputs are inactive on the pins during loopback


def test_leaving_loopback_restores_line_inputs() -> None:
    u = Uart16550()
    u.set_modem_inputs(cts=True)
    u.write(R.MCR, R.MCR_LOOP)
    u.write(R.MCR, R.MCR_DTR)
    assert u.read(R.MSR) & R.MSR_STATES == R.MSR_CTS
    assert u.mcr_outputs == R.MCR_DTR


# --- master reset ------------------------------------------------------------------------
def test_reset_keeps_divisor_clears_fifos() -> None:
    u, _ = make()
    u.write(R.LCR, R.LCR_DLAB)
    u.write(R.DLL, 3)
    u.write(R.LCR, 0)
    u.write(R.IER, 0x0F)
    u.receive(b"abc")
    u.reset()
    assert u.divisor == 3
    assert u.read(R.IER) == 0
    assert not u.read(R.LSR) & R.LSR_DR
    assert not u.fifo_enabled


def test_on_rx_space_when_a_full_fifo_frees() -> None:
    u, _ = make()
    calls: list[None] = []
    u.on_rx_space = lambda: calls.append(None)
    u.receive(b"x" * 15)
    u.read(R.RBR)  # was not full
    assert calls == []
    u.receive(b"x" * 2)
    u.read(R.RBR)
    assert len(calls) == 1
    u.receive(b"x")
    u.write(R.FCR, R.FCR_ENABLE | R.FCR_CLEAR_RX)
    assert len(calls) == 2
    u.receive(b"x" * 16)
    u.reset()
    assert len(calls) == 3


# --- the console driver against the model ---------------------------------------------------
def test_console_programs_the_chip() -> None:
    u, line = make(fifo=False)
    c = Console(u, divisor=3)
    assert u.baud == 38400.0
    assert u.fifo_enabled and c.fifo_size == 16
    assert u.read(R.LCR) == R.LCR_WLEN8
    assert u.read(R.IER) == R.IER_ERBFI | R.IER_ELSI
    assert u.read(R.MCR) & R.MCR_OUT2
    c.write(b"boot: ok\n")
    assert line.out == b"boot: ok\n"


def test_console_bursts_of_fifo_size() -> None:
    u, line = make()
    c = Console(u)
    bursts: list[int] = []
    u.transmit_sink = lambda d: bursts.append(len(d))
    c.write(b"x" * 100)
    assert bursts == [16] * 6 + [4]


def test_console_onlcr() -> None:
    u, line = make()
    Console(u, onlcr=True).write(b"a\nb\n")
    assert line.out == b"a\r\nb\r\n"


def test_console_stuck_transmitter_does_not_hang() -> None:
    u, line = make(immediate=False)
    c = Console(u, poll_limit=5)
    assert c.write(b"y" * 40) == 40  # nobody ticks: THRE never comes back
    u.tick(100)
    assert 0 < len(line.out) <= 17


def test_console_read_nowait_and_overrun_count() -> None:
    u, _ = make()
    c = Console(u)
    u.receive(b"x" * 20)
    assert c.read_nowait() == b"x" * 16
    assert c.overruns == 1
    assert c.read_nowait() == b""


def test_console_in_loopback_reads_its_own_output() -> None:
    u, line = make()
    c = Console(u)
    u.write(R.MCR, u.read(R.MCR) | R.MCR_LOOP)
    c.write(b"echo")
    assert c.read_nowait() == b"echo"
    assert line.out == b""
