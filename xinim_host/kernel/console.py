"""A console on host file descriptors: what the kernel and the VFS console device
write program output to and read input from, until the UART model carries it."""
from __future__ import annotations

import errno
import fcntl
import os
import struct

import trio

from .errors import SysError


class FdConsole:
    """Output to ``out_fd``, input from ``in_fd``; termios ioctls go to whichever is a tty."""

    def __init__(self, out_fd: int = 1, in_fd: int = 0) -> None:
        self.out_fd, self.in_fd = out_fd, in_fd

    def write(self, data: bytes) -> int:
        view, done = memoryview(data), 0
        while done < len(view):
            try:
                done += os.write(self.out_fd, view[done:])
            except BlockingIOError:
                import select
                select.select([], [self.out_fd], [])
            except BrokenPipeError:
                raise SysError(errno.EPIPE) from None
        return done

    async def read(self, count: int) -> bytes:
        while True:
            await trio.lowlevel.wait_readable(self.in_fd)
            try:
                return os.read(self.in_fd, count)
            except BlockingIOError:
                continue

    def tty_fd(self) -> int | None:
        for fd in (self.in_fd, self.out_fd):
            if os.isatty(fd):
                return fd
        return None

    def ioctl(self, request: int, arg: bytes) -> tuple[int, bytes]:
        fd = self.tty_fd()
        if fd is None:
            raise SysError(errno.ENOTTY)
        size = max(len(arg), 64)
        try:
            out = fcntl.ioctl(fd, request, arg.ljust(size, b"\0") if arg else bytes(size))
        except OSError as exc:
            raise SysError(exc.errno or errno.ENOTTY) from None
        return 0, bytes(out)


WINSIZE = struct.Struct("<HHHH")
