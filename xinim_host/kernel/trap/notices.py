"""Kernel notices to servers (a task was named, exec'd, stopped, died): sent in
order when asked, answers awaited, errors logged -- never fatal."""
from __future__ import annotations

import errno
import logging
import os
from typing import Callable

import trio

from ...lib import protocol as p
from ...lib.errors import SysError
from ...lib.ipc import Lattice
from ...lib.ipc import Pending as IpcPending

log = logging.getLogger(__name__)


class Notices:
    def __init__(self, lattice: Lattice, sender: int) -> None:
        self.lattice, self.sender = lattice, sender
        self._unanswered: set[IpcPending] = set()

    def send(self, dst: int, body: p.Payload, then: Callable[[], None] | None = None) -> None:
        """A notice to ``dst``; ``then`` runs once it is answered (or failed to go)."""
        def answered(msg: p.Message) -> None:
            if msg.body.error == errno.ESRCH:   # it went first (exit_group reached PM already)
                log.debug("%s -> %d: no such process", type(body).__name__, dst)
            elif msg.body.error:
                log.warning("%s -> %d: %s", type(body).__name__, dst, os.strerror(msg.body.error))
            if then is not None:
                then()
        try:
            answer = self.lattice.call(self.sender, dst, body)
        except SysError as exc:
            log.warning("%s -> %d failed: %s", type(body).__name__, dst, exc)
            if then is not None:
                then()
            return
        if isinstance(answer, IpcPending):
            self._unanswered.add(answer)
            answer.add_done_callback(lambda _msg: self._unanswered.discard(answer))
            answer.add_done_callback(answered)
        else:
            answered(answer)

    def in_order(self, notices: list[tuple[int, p.Payload]], then: Callable[[], None]) -> None:
        """Send notices one after another (each once the previous one is answered),
        then call ``then``."""
        if not notices:
            then()
            return
        (dst, body), rest = notices[0], notices[1:]
        self.send(dst, body, then=lambda: self.in_order(rest, then))

    async def settle(self, timeout: float = 2.0) -> None:
        """Wait (a bounded while) for the notices still in flight: a joined node's
        link must not close under its last exit report."""
        with trio.move_on_after(timeout):
            for answer in list(self._unanswered):
                await answer.wait()
