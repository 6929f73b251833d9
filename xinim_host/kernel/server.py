"""What every XINIM server shares: a thin receive loop around a call vector.

A server subclass names its pid, its reply type and a ``handlers`` table
(message type -> handler function, MINIX ``table.c`` style).  A handler is a
plain function ``handler(server, request)`` that returns

* an ``int`` -- the call's result, sent back in the server's generic reply;
* a reply payload -- sent as it is (its ``call`` filled in when left 0);
* ``None`` -- "don't reply yet" (MINIX ``SUSPEND``): the handler parked the
  request somewhere and calls ``request.reply(...)`` when the condition holds;
* a coroutine -- run as its own task in the server's nursery; what it returns is
  the reply, as above.

A handler raises :class:`SysError` to fail the call with that errno.  Nothing a
client sends can take the loop down: protocol errors are answered with an error
reply, unknown types with ENOSYS, and a handler's unexpected exception is logged
and answered with EIO.
"""
from __future__ import annotations

import dataclasses
import errno
import logging
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Coroutine, Mapping

import trio

from .errors import SysError
from .ipc import Delivery, IpcError, Lattice
from .protocol import (Message, Payload, ProtocolError, ReplyBase, effective_caller,
                       error_reply_for, is_reply_type, reply_class)

log = logging.getLogger(__name__)

HandlerResult = int | Payload | None | Coroutine[Any, Any, "int | Payload | None"]
Handler = Callable[[Any, "Request"], HandlerResult]


@dataclass(slots=True)
class Request:
    """One request being served: the handler's whole context (no globals)."""

    server: "Server"
    msg: Message
    caller: int           # the pid this request speaks for
    replied: bool = False

    @property
    def body(self) -> Any:
        return self.msg.body

    def reply(self, answer: int | Payload) -> None:
        if self.replied:
            raise RuntimeError(f"request {self.msg.req_id} answered twice")
        self.replied = True
        self.server.send_reply(self.msg, self.server.make_reply(self.msg.m_type, answer))

    def fail(self, err: int) -> None:
        self.reply(error_reply_for(self.msg.m_type, err))


class Server:
    """Base of VFS, PM and MM: endpoint, receive loop, call vector."""

    pid: ClassVar[int]
    reply_type: ClassVar[int]
    handlers: ClassVar[Mapping[int, Handler]] = {}

    def __init__(self, lattice: Lattice) -> None:
        self.lattice = lattice
        self.log = logging.getLogger(f"xinim.{type(self).__name__}")
        self.nursery: trio.Nursery | None = None
        self.endpoint = lattice.register(self.pid)
        self.endpoint.handler = self.handle   # direct dispatch when idle

    def make_reply(self, call: int, answer: int | Payload) -> Payload:
        if isinstance(answer, int):
            return reply_class(self.reply_type, call)(call=call, result=answer)
        if isinstance(answer, ReplyBase) and answer.call == 0:
            return dataclasses.replace(answer, call=call)
        return answer

    def send_reply(self, request: Message, body: Payload) -> None:
        try:
            self.lattice.reply(self.pid, request, body)
        except IpcError as exc:  # the asker went away meanwhile: nothing to answer
            self.log.info("reply to %d dropped: %s", request.m_source, exc)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The receive loop: messages that could not be handled directly queue here."""
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            task_status.started()
            try:
                while True:
                    self.handle(await self.lattice.recv(self.pid))
            finally:
                self.nursery = None

    def handle(self, delivery: Delivery) -> None:
        if isinstance(delivery, ProtocolError):
            self._answer_protocol_error(delivery)
            return
        msg = delivery
        m_type = msg.m_type
        if is_reply_type(m_type):
            self.log.warning("unsolicited reply type %d from %d dropped", m_type, msg.m_source)
            return
        handler = self.handlers.get(m_type)
        if handler is None:
            self.log.warning("message type %d from %d: not served here (ENOSYS)", m_type,
                             msg.m_source)
            self.send_reply(msg, error_reply_for(m_type, errno.ENOSYS))
            return
        request = Request(self, msg, effective_caller(msg, getattr(msg.body, "caller",
                                                                   msg.m_source)))
        try:
            answer = handler(self, request)
        except SysError as exc:
            request.fail(exc.errno)
            return
        except Exception:
            self.log.exception("handler for type %d failed", m_type)
            request.fail(errno.EIO)
            return
        if isinstance(answer, Coroutine):
            if self.nursery is None:
                answer.close()
                self.log.error("async handler for type %d without a running server", m_type)
                request.fail(errno.EAGAIN)
                return
            self.nursery.start_soon(self._finish_async, request, answer)
        elif answer is not None:
            request.reply(answer)

    async def _finish_async(self, request: Request, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            answer = await coro
        except SysError as exc:
            request.fail(exc.errno)
        except Exception:
            self.log.exception("async handler for type %d failed", request.msg.m_type)
            request.fail(errno.EIO)
        else:
            if answer is not None:
                request.reply(answer)

    def _answer_protocol_error(self, exc: ProtocolError) -> None:
        source = getattr(exc, "m_source", None)
        self.log.warning("malformed message from %s: %s", source, exc)
        if source is None:
            return
        fake = Message(source, exc.req_id or 0, error_reply_for(exc.m_type, exc.errno))
        self.send_reply(fake, error_reply_for(exc.m_type, exc.errno))
