"""The 16550A UART model, its lines (a host pty, or our terminal), the console
driver on top of it, and the consoles programs talk to with their job control
(``terminal``: a host fd, a host tty, or the serial line).  On ``lib`` only."""
from .console import Console
from .pty_line import FdLine, PtyLine
from .stdio_line import StdioLine
from .uart16550 import Uart16550

__all__ = ["Console", "FdLine", "PtyLine", "StdioLine", "Uart16550"]
