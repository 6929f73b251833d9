"""How the VFS asks PM and MM for the facts /proc shows, from inside a handler.

Lookups, opens and ioctls are synchronous handlers, and most of the time PM and
MM answer a ``lattice.call`` at once (they are idle while VFS works: direct
dispatch).  When one cannot answer at once (busy, a queued inbox), :meth:`Peers.ask`
raises :class:`Later`; the bound call vector (:func:`bind_call_vector`) then waits
for that reply in a task of its own and runs the handler again with the answer
at hand -- the handlers that reach a pseudo filesystem have changed nothing
before they ask.  (Who asks is no server state: handlers pass the caller down,
``who`` to the filesystems and the request to devices.)
"""
from __future__ import annotations

import collections.abc
import logging
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..lib.errors import SysError
from ..lib.ipc import Pending
from ..lib.protocol import VFS_PID

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import VfsServer

log = logging.getLogger(__name__)

_Coroutine = collections.abc.Coroutine
MAX_RETRIES = 16

Handler = Callable[["VfsServer", "Request"], Any]


class Later(Exception):
    """A peer's answer is not there yet: wait for ``pending``, then ask again."""

    def __init__(self, pending: Pending, key: Any) -> None:
        super().__init__("answer pending")
        self.pending = pending
        self.key = key


class Peers:
    """The VFS's questions to the other servers (PM, MM)."""

    def __init__(self, srv: VfsServer) -> None:
        self.srv = srv
        self.answers: dict[Any, Any] | None = None     # set while a handler is re-run

    def connected(self, dst: int) -> bool:
        return (VFS_PID, dst) in self.srv.lattice.send_channels

    def ask(self, dst: int, body: Any) -> Any:
        """The reply payload (check its ``error``), or None when ``dst`` cannot be
        reached at all (a VFS running alone, in tests)."""
        key = (dst, body)
        answers = self.answers
        if answers is not None:
            got = answers.get(key)
            if got is not None:
                return got
        if not self.connected(dst):
            return None
        try:
            answer = self.srv.lattice.call(VFS_PID, dst, body)
        except SysError as exc:
            log.info("VFS -> %d %s: %s", dst, type(body).__name__, exc)
            return None
        if isinstance(answer, Pending):
            raise Later(answer, key)
        return answer.body


async def _retry(srv: VfsServer, handler: Handler, req: Request, exc: Later) -> Any:
    answers: dict[Any, Any] = {}
    peers = srv.peers
    for _ in range(MAX_RETRIES):
        answers[exc.key] = (await exc.pending.wait()).body
        peers.answers = answers
        try:
            answer = handler(srv, req)
        except Later as again:
            exc = again
            continue
        finally:
            peers.answers = None
        if isinstance(answer, _Coroutine):
            answer = await answer
        return answer
    raise SysError(11)                       # EAGAIN: the peers keep us waiting


def _bind(handler: Handler) -> Handler:
    def call(srv: VfsServer, req: Request) -> Any:
        try:
            return handler(srv, req)
        except Later as exc:
            return _retry(srv, handler, req, exc)
    call.__name__ = getattr(handler, "__name__", "call")
    call.__doc__ = handler.__doc__
    return call


def bind_call_vector(vector: Mapping[int, Handler]) -> dict[int, Handler]:
    """``vector`` with every handler bound as described above."""
    return {m_type: _bind(handler) for m_type, handler in vector.items()}
