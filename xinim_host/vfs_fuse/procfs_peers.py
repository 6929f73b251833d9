"""How the VFS asks PM and MM for the facts /proc shows, from inside a handler.

Lookups, opens and ioctls are synchronous handlers, and most of the time PM and
MM answer a ``lattice.call`` at once (they are idle while VFS works: direct
dispatch).  When one cannot answer at once (busy, a queued inbox), :meth:`Peers.ask`
raises :class:`Later`; the bound call vector (:func:`bind_call_vector`) then waits
for that reply in a task of its own and runs the handler again with the answer
at hand -- the handlers that reach a pseudo filesystem have changed nothing
before they ask.

The bound vector also sets ``srv.current``, the request being served, which
synthetic files and devices read for "the caller" (``/proc/self``, ``/dev/tty``,
TIOCSCTTY): the vnode interface itself carries no caller.
"""
from __future__ import annotations

import collections.abc
import logging
from typing import Any, Callable, Mapping

from ..lib.errors import SysError
from ..lib.ipc import Pending
from ..lib.protocol import VFS_PID

log = logging.getLogger(__name__)

_Coroutine = collections.abc.Coroutine
MAX_RETRIES = 16

Handler = Callable[[Any, Any], Any]
Hook = Callable[[Any, Any, Any], None]


class Later(Exception):
    """A peer's answer is not there yet: wait for ``pending``, then ask again."""

    def __init__(self, pending: Pending, key: Any) -> None:
        super().__init__("answer pending")
        self.pending = pending
        self.key = key


class Peers:
    """The VFS's questions to the other servers (PM, MM)."""

    def __init__(self, srv: Any) -> None:
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


async def _retry(srv: Any, handler: Handler, req: Any, exc: Later, after: Hook | None) -> Any:
    answers: dict[Any, Any] = {}
    peers = srv.peers
    for _ in range(MAX_RETRIES):
        answers[exc.key] = (await exc.pending.wait()).body
        srv.current = req
        peers.answers = answers
        try:
            answer = handler(srv, req)
        except Later as again:
            exc = again
            continue
        finally:
            peers.answers = None
        if after is not None:
            _run_hook(after, srv, req, answer)
        if isinstance(answer, _Coroutine):
            answer = await answer
        return answer
    raise SysError(11)                       # EAGAIN: the peers keep us waiting


def _run_hook(after: Hook, srv: Any, req: Any, answer: Any) -> None:
    try:
        after(srv, req, answer)
    except Exception:                         # bookkeeping must never fail a call
        log.exception("VFS hook for message type %d failed", req.msg.m_type)


def _bind(handler: Handler, after: Hook | None) -> Handler:
    if after is None:
        def call(srv: Any, req: Any) -> Any:
            srv.current = req
            try:
                return handler(srv, req)
            except Later as exc:
                return _retry(srv, handler, req, exc, None)
    else:
        def call(srv: Any, req: Any) -> Any:
            srv.current = req
            try:
                answer = handler(srv, req)
            except Later as exc:
                return _retry(srv, handler, req, exc, after)
            _run_hook(after, srv, req, answer)
            return answer
    call.__name__ = getattr(handler, "__name__", "call")
    call.__doc__ = handler.__doc__
    return call


def bind_call_vector(vector: Mapping[int, Handler],
                     hooks: Mapping[int, Hook] | None = None) -> dict[int, Handler]:
    """``vector`` with every handler bound as described above; ``hooks[type]``
    runs after a successful call of that type with ``(srv, req, answer)``."""
    hooks = hooks or {}
    return {m_type: _bind(handler, hooks.get(m_type)) for m_type, handler in vector.items()}
