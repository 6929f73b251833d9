"""The 16550A UART model, its pty line and the console driver on top of it."""
from xinim_host.uart.console import Console
from xinim_host.uart.pty_line import PtyLine
from xinim_host.uart.uart16550 import Uart16550

__all__ = ["Console", "PtyLine", "Uart16550"]
