"""The errno-carrying exceptions of the MM core.

Both derive from the project-wide :class:`~xinim_host.lib.errors.SysError`,
so a server's one ``except SysError`` turns them into an error reply
(``exc.errno``); anything else escaping the core is a bug, not an answer.
"""
from __future__ import annotations

import errno as _errno

from ..lib.errors import SysError


class MmError(SysError):
    """An MM request failed with ``errno`` (a positive errno value)."""


class OutOfFrames(MmError):
    """The page-frame pool cannot satisfy a request (always ENOMEM)."""

    def __init__(self, message: str = "out of page frames") -> None:
        super().__init__(_errno.ENOMEM, message)
