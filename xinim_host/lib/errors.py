"""The one exception servers and the kernel raise to answer a call with an errno."""
from __future__ import annotations

import errno as _errno
import os


class SysError(Exception):
    """A call failed with ``errno``; servers turn it into an error reply, the
    dispatcher into ``-errno`` for the caller."""

    def __init__(self, err: int, message: str = "") -> None:
        super().__init__(message or os.strerror(err))
        self.errno = err

    def __repr__(self) -> str:
        return f"SysError({_errno.errorcode.get(self.errno, self.errno)}, {str(self)!r})"
