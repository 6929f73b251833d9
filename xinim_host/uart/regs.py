"""Register offsets and bit names of the 16550A UART (National PC16550D data sheet).

One shared module names the numbers, so the chip model, the console driver and the
tests all say ``LSR_THRE`` rather than ``0x20``.
"""
from __future__ import annotations

# --- register offsets (from the base port) --------------------------------------------
# Offsets 0 and 1 are shared: with LCR.DLAB=1 they address the divisor latch.
RBR = 0  # receiver buffer (read, DLAB=0)
THR = 0  # transmitter holding register (write, DLAB=0)
DLL = 0  # divisor latch, low byte (DLAB=1)
IER = 1  # interrupt enable (DLAB=0)
DLM = 1  # divisor latch, high byte (DLAB=1)
IIR = 2  # interrupt identification (read)
FCR = 2  # FIFO control (write)
LCR = 3  # line control
MCR = 4  # modem control
LSR = 5  # line status
MSR = 6  # modem status
SCR = 7  # scratch
NUM_REGS = 8

FIFO_SIZE = 16
# 1.8432 MHz crystal / 16 samples per bit: divisor 1 is 115200 baud.
BASE_BAUD = 115200

# --- IER: interrupt enable ----------------------------------------------------------
IER_ERBFI = 0x01  # received data available (and character timeout)
IER_ETBEI = 0x02  # transmitter holding register empty
IER_ELSI = 0x04  # receiver line status
IER_EDSSI = 0x08  # modem status
IER_MASK = 0x0F  # bits 4-7 read as 0 on a 16550A

# --- IIR: interrupt identification (bit 0 = 1 means "nothing pending") ------------------
IIR_NO_INT = 0x01
IIR_ID_MASK = 0x0E
IIR_MSR = 0x00  # modem status               (priority 4, lowest)
IIR_THRE = 0x02  # THR empty                  (priority 3)
IIR_RDA = 0x04  # received data available    (priority 2)
IIR_RLS = 0x06  # receiver line status       (priority 1, highest)
IIR_CTI = 0x0C  # character timeout          (priority 2)
IIR_FIFO_ENABLED = 0xC0  # both bits set while FCR enables the FIFOs

# --- FCR: FIFO control (write only) ---------------------------------------------------
FCR_ENABLE = 0x01
FCR_CLEAR_RX = 0x02
FCR_CLEAR_TX = 0x04
FCR_DMA_MODE = 0x08
FCR_TRIGGER_MASK = 0xC0
FCR_TRIGGER_1 = 0x00
FCR_TRIGGER_4 = 0x40
FCR_TRIGGER_8 = 0x80
FCR_TRIGGER_14 = 0xC0
TRIGGER_LEVELS = {FCR_TRIGGER_1: 1, FCR_TRIGGER_4: 4, FCR_TRIGGER_8: 8, FCR_TRIGGER_14: 14}

# --- LCR: line control ----------------------------------------------------------------
LCR_WLEN5 = 0x00
LCR_WLEN6 = 0x01
LCR_WLEN7 = 0x02
LCR_WLEN8 = 0x03
LCR_STOP2 = 0x04
LCR_PARITY = 0x08
LCR_EVEN_PARITY = 0x10
LCR_STICK_PARITY = 0x20
LCR_BREAK = 0x40
LCR_DLAB = 0x80

# --- MCR: modem control ---------------------------------------------------------------
MCR_DTR = 0x01
MCR_RTS = 0x02
MCR_OUT1 = 0x04
MCR_OUT2 = 0x08  # on a PC this gates the chip's INTR pin to the PIC
MCR_LOOP = 0x10
MCR_MASK = 0x1F

# --- LSR: line status -----------------------------------------------------------------
LSR_DR = 0x01  # data ready
LSR_OE = 0x02  # overrun error
LSR_PE = 0x04  # parity error
LSR_FE = 0x08  # framing error
LSR_BI = 0x10  # break interrupt
LSR_THRE = 0x20  # THR (TX FIFO) empty
LSR_TEMT = 0x40  # THR and transmit shift register both empty
LSR_RXFE = 0x80  # error in RX FIFO
LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI  # the "receiver line status" sources

# --- MSR: modem status (low nibble: deltas, cleared on read; high nibble: inputs) -------
MSR_DCTS = 0x01
MSR_DDSR = 0x02
MSR_TERI = 0x04  # trailing edge of ring indicator (RI went from on to off)
MSR_DDCD = 0x08
MSR_DELTAS = 0x0F
MSR_CTS = 0x10
MSR_DSR = 0x20
MSR_RI = 0x40
MSR_DCD = 0x80
MSR_STATES = 0xF0
