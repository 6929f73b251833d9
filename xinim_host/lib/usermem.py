"""User memory as the dispatcher sees it: copy in, copy out, EFAULT on bad pointers.

The interceptor provides the real thing (the tracee's memory through
process_vm_readv/writev); ``FlatMemory`` is a plain bytearray address space for
kernel-side callers and tests.
"""
from __future__ import annotations

import errno
from typing import Protocol

from .errors import SysError


class UserMemory(Protocol):
    def read(self, addr: int, size: int) -> bytes: ...
    def write(self, addr: int, data: bytes) -> None: ...
    def read_cstring(self, addr: int, limit: int = 4096) -> bytes: ...


class FlatMemory:
    """``size`` bytes of memory at ``base``; anything outside is EFAULT, as is NULL."""

    def __init__(self, size: int = 1 << 20, base: int = 0x10000) -> None:
        self.base, self.buf = base, bytearray(size)

    def _span(self, addr: int, size: int) -> int:
        off = addr - self.base
        if addr == 0 or off < 0 or size < 0 or off + size > len(self.buf):
            raise SysError(errno.EFAULT, f"bad address {addr:#x}+{size}")
        return off

    def read(self, addr: int, size: int) -> bytes:
        off = self._span(addr, size)
        return bytes(self.buf[off:off + size])

    def write(self, addr: int, data: bytes) -> None:
        off = self._span(addr, len(data))
        self.buf[off:off + len(data)] = data

    def read_cstring(self, addr: int, limit: int = 4096) -> bytes:
        off = self._span(addr, 1)
        end = self.buf.find(0, off, min(off + limit + 1, len(self.buf)))
        if end < 0:
            if off + limit + 1 <= len(self.buf):
                raise SysError(errno.ENAMETOOLONG, "string too long")
            raise SysError(errno.EFAULT, "string runs off mapped memory")
        return bytes(self.buf[off:end])
