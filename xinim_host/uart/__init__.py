"""The 16550A UART model, its lines (a host pty, or our terminal) and the console driver on top of it."""
from xinim_host.uart.console import Console
from xinim_host.uart.pty_line import FdLine, PtyLine
from xinim_host.uart.stdio_line import StdioLine
from xinim_host.uart.uart16550 import Uart16550

__all__ = ["Console", "FdLine", "PtyLine", "StdioLine", "Uart16550"]
