"""Reading a host /proc file in as few syscalls as it takes: openat, reads to
the end, close -- where ``open()`` adds an fstat, an isatty ioctl and an lseek
(and a text layer), which for the maps and stat files read at every exec cost
more than the reads."""
from __future__ import annotations

import os

_CHUNK = 1 << 16


def read_proc(path: str) -> bytes:
    """The whole of ``path`` (OSError as ``open`` raises it)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _CHUNK)
        if not data:
            return data
        parts = [data]
        while True:          # seq files hand out whole records: read until EOF
            more = os.read(fd, _CHUNK)
            if not more:
                break
            parts.append(more)
        return data if len(parts) == 1 else b"".join(parts)
    finally:
        os.close(fd)
