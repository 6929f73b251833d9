"""The serial line of a ``Uart16550`` on the terminal this process runs on.

``xinim-boot --serial stdio`` (and ``xinim-run`` on a terminal) make your terminal the far
end of the console's serial cable, like ``qemu -serial stdio``: what the chip transmits is
written to ``out_fd``, what you type arrives at its receiver.  The terminal is put in raw
mode for as long as the line is open -- the cooked layer (echo, line editing, ^C) is the
XINIM console's, on the other side of the chip -- and restored by ``close()``.  Its fds are
made non-blocking for the pumps and put back as they were.

One byte never reaches the chip: the escape character (Ctrl-], as in telnet), which calls
``on_escape`` -- the way to leave a system whose console swallows ^C.

Window size: read from the terminal on SIGWINCH (and once at the start).
"""
from __future__ import annotations

import logging
import os
import signal
import termios
import tty
from typing import Callable

import trio

from .pty_line import DEFAULT_TX_BUFFER_LIMIT, FdLine
from .uart16550 import Uart16550

log = logging.getLogger(__name__)

ESCAPE = 0x1D   # Ctrl-]


class StdioLine(FdLine):
    """Attach ``uart``'s line side to the terminal on ``in_fd``/``out_fd`` (raw while open)."""

    name = "stdio"

    def __init__(self, uart: Uart16550, in_fd: int = 0, out_fd: int = 1, *,
                 escape: int | None = ESCAPE,
                 tx_buffer_limit: int = DEFAULT_TX_BUFFER_LIMIT) -> None:
        self.escape = escape
        self.on_escape: Callable[[], None] | None = None
        self._saved_attrs: list | None = None
        self._saved_blocking: dict[int, bool] = {}
        if os.isatty(in_fd):
            self._saved_attrs = termios.tcgetattr(in_fd)
            tty.setraw(in_fd, termios.TCSANOW)
        for fd in dict.fromkeys((in_fd, out_fd)):
            self._saved_blocking[fd] = os.get_blocking(fd)
            os.set_blocking(fd, False)
        super().__init__(uart, in_fd, out_fd, tx_buffer_limit=tx_buffer_limit)

    def _deliver(self, data: bytes, room: int) -> None:
        if self.escape is not None and self.escape in data:
            data = data[:data.index(self.escape)]
            if data:
                super()._deliver(data, room)
            log.info("escape character: leaving")
            if self.on_escape is not None:
                self.on_escape()
            return
        super()._deliver(data, room)

    async def watch_winsize(self, callback: Callable[[tuple[int, int, int, int]], None]) -> None:
        """SIGWINCH tells us when the terminal changed size."""
        with trio.open_signal_receiver(signal.SIGWINCH) as signals:
            last = self.winsize()
            if last is not None:
                callback(last)
            async for _ in signals:
                size = self.winsize()
                if size is not None and size != last:
                    last = size
                    callback(size)

    def close(self) -> None:
        """Give the terminal back as it was."""
        self._detach()
        self.flush_now()
        for fd, blocking in self._saved_blocking.items():
            try:
                os.set_blocking(fd, blocking)
            except OSError:
                pass
        self._saved_blocking.clear()
        if self._saved_attrs is not None:
            try:
                termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self._saved_attrs)
            except termios.error:
                pass
            self._saved_attrs = None

    def __enter__(self) -> "StdioLine":
        return self
