"""signalfd: the caller's pending signals, as PM holds them, read as records."""
from __future__ import annotations

from typing import Any

from .anon import AnonFile


class SignalFd(AnonFile):
    name = b"[signalfd]"

    def __init__(self, srv: Any, mask: int) -> None:
        super().__init__()
        self.srv = srv
        self.mask = mask

    def set_mask(self, mask: int) -> None:
        self.mask = mask


def pending_changed(srv: Any, pid: int, pending: int) -> None:
    pass
