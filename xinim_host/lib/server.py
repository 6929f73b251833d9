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
and answered with EIO -- as is an answer that is neither an int nor a payload; an
answer that does not fit the wire (a path over 255 bytes...) is answered with the
errno the encoder gave.  The receive loop ends when the server's endpoint closes.
"""
from __future__ import annotations

import collections.abc
import errno
import logging
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Coroutine, Mapping, Protocol

import trio

from .errors import SysError
from .ipc import Delivery, IpcError, Lattice
from .protocol import Message, Payload, ProtocolError, ReplyBase, error_reply_for, reply_class
from .protocol.wire import (_REPLY_TYPES, NODE_KERNEL_BASE, REPLIES, TRUSTED_SOURCES,
                            WITH_CALL, is_kernel, make_message, with_call)

log = logging.getLogger(__name__)

HandlerResult = int | Payload | None | Coroutine[Any, Any, "int | Payload | None"]
Handler = Callable[[Any, "Request"], HandlerResult]

# int answers whose reply is kept per call (-errno is never one: errors go apart)
_KEPT_ANSWERS = 4096
_Coroutine = collections.abc.Coroutine   # isinstance against it: ~3x cheaper than typing's


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
        msg = self.msg
        server = self.server
        body = server.make_reply(msg.body.M_TYPE, answer)
        if not isinstance(body, Payload):
            raise TypeError(f"a handler's answer must be an int or a payload, not {answer!r}")
        self.replied = True
        server.send_reply(msg, body)

    def fail(self, err: int) -> None:
        self.reply(error_reply_for(self.msg.m_type, err))


class Blocker(Protocol):
    """A parked call (MINIX ``SUSPEND``): a signal or the caller's exit cancels it."""

    def cancel(self, err: int) -> None: ...


class Server:
    """Base of VFS, PM, MM and NET: endpoint, receive loop, call vector, and the
    registry of blocked calls."""

    pid: ClassVar[int]
    reply_type: ClassVar[int]
    handlers: ClassVar[Mapping[int, Handler]] = {}
    # whose ``caller`` field this server believes (kernels are checked apart); NET
    # adds the VFS, whose socket proxies speak for the fd's owner
    trusted: ClassVar[frozenset[int]] = TRUSTED_SOURCES

    def __init__(self, lattice: Lattice) -> None:
        self.lattice = lattice
        self.log = logging.getLogger(f"xinim.{type(self).__name__}")
        self.nursery: trio.Nursery | None = None
        self.endpoint = lattice.register(self.pid)
        self.endpoint.handler = self.handle   # direct dispatch when idle
        # pid -> its parked calls, so a signal or exit can end them (cancel_blocked)
        self.blocked: dict[int, set[Blocker]] = {}
        # call -> the reply class an int answer is sent in (one lookup per call after
        # the first; only classes with a generated ``_quick_reply``)
        self._int_reply: dict[int, Any] = {}
        # call -> {int answer: its reply}: replies are frozen, so the reply of a small
        # answer (0, an fd, a pid, a count) is made once and sent again
        self._int_bodies: dict[int, dict[int, Any]] = {}

    # -- blocked calls (MINIX's SUSPEND bookkeeping) -----------------------------------
    def block(self, pid: int, waiter: Blocker) -> None:
        self.blocked.setdefault(pid, set()).add(waiter)

    def unblock(self, pid: int, waiter: Blocker) -> None:
        waiters = self.blocked.get(pid)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self.blocked[pid]

    def cancel_blocked(self, pid: int, err: int) -> int:
        """End every call ``pid`` has parked here with ``err``; how many there were."""
        waiters = self.blocked.pop(pid, None)
        if not waiters:
            return 0
        for waiter in list(waiters):
            waiter.cancel(err)
        return len(waiters)

    def _int_reply_class(self, call: int) -> Any:
        """The reply class of ``call`` if it has a ``_quick_reply`` (else None), kept."""
        cls = REPLIES.get((self.reply_type, call)) or REPLIES[(self.reply_type, 0)]
        if "_quick_reply" not in cls.__dict__:
            return None
        self._int_reply[call] = cls
        return cls

    def _int_bodies_for(self, call: int) -> dict[int, Any] | None:
        """The kept int replies of ``call`` (None: its reply class has no quick form)."""
        if (self._int_reply.get(call) or self._int_reply_class(call)) is None:
            return None
        bodies = self._int_bodies[call] = {}
        return bodies

    def make_reply(self, call: int, answer: int | Payload) -> Payload:
        if type(answer) is int:
            cls = self._int_reply.get(call) or self._int_reply_class(call)
            if cls is not None:
                return cls._quick_reply(call, 0, answer)
            cls = REPLIES.get((self.reply_type, call)) or REPLIES[(self.reply_type, 0)]
            return cls(call=call, result=answer)  # type: ignore[call-arg]
        copy = WITH_CALL.get(type(answer))       # a declared reply class
        if copy is not None:
            return copy(answer, call) if answer.call == 0 else answer  # type: ignore[attr-defined]
        if isinstance(answer, int):   # an int subclass (bool, IntEnum): as the plain int
            return reply_class(self.reply_type, call)(call=call, result=int(answer))  # type: ignore[call-arg]
        if isinstance(answer, ReplyBase) and answer.call == 0:
            return with_call(answer, call)
        return answer

    def send_reply(self, request: Message, body: Payload) -> None:
        try:
            self.lattice.reply(self.pid, request, body)
        except IpcError as exc:  # the asker went away meanwhile: nothing to answer
            self.log.info("reply to %d dropped: %s", request.m_source, exc)
        except ProtocolError as exc:  # a handler's reply that does not fit the wire
            self.log.error("reply to %d for type %d does not encode: %s", request.m_source,
                           request.m_type, exc)
            try:
                self.lattice.reply(self.pid, request, error_reply_for(request.m_type, exc.errno))
            except IpcError:
                pass

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The receive loop: messages that could not be handled directly queue here."""
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            task_status.started()
            try:
                while True:
                    try:
                        delivery = await self.lattice.recv(self.pid)
                    except IpcError as exc:
                        if exc.errno != errno.EPIPE:
                            raise
                        self.log.info("endpoint %d closed: receive loop ends", self.pid)
                        break
                    self.handle(delivery)
            finally:
                self.nursery = None

    def handle(self, delivery: Delivery) -> None:
        if type(delivery) is not Message:
            if isinstance(delivery, ProtocolError):
                self._answer_protocol_error(delivery)
                return
        msg: Message = delivery  # type: ignore[assignment]
        body = msg.body
        m_type = body.M_TYPE
        handler = self.handlers.get(m_type)
        if handler is None:
            if m_type in _REPLY_TYPES:
                self.log.warning("unsolicited reply type %d from %d dropped", m_type,
                                 msg.m_source)
                return
            self.log.warning("message type %d from %d: not served here (ENOSYS)", m_type,
                             msg.m_source)
            self.send_reply(msg, error_reply_for(m_type, errno.ENOSYS))
            return
        source = msg.m_source
        # ``protocol.effective_caller``, inline: ``caller`` is believed from kernels
        # and PM only (the set test first: it is the common case and cheap)
        if source in self.trusted:
            caller = getattr(body, "caller", source)
        elif source >= NODE_KERNEL_BASE and is_kernel(source):
            caller = getattr(body, "caller", source)
            # a joined node's kernel acts for its own processes only
            if caller != source and not self.lattice.may_speak_for(source, caller):
                self.log.info("node kernel %d spoke for pid %d: refused", source, caller)
                self.send_reply(msg, error_reply_for(m_type, errno.EPERM))
                return
        else:
            caller = source
        request = Request(self, msg, caller)
        try:
            answer = handler(self, request)
        except SysError as exc:
            self._fail_unless_replied(request, exc.errno)
            return
        except Exception:
            self.log.exception("handler for type %d failed", m_type)
            self._fail_unless_replied(request, errno.EIO)
            return
        if answer is None:
            return
        if not request.replied:
            # the common answers, inline (``request.reply``, and as there a failure
            # to send is the handler's bad answer): an int in the generic reply, or
            # a declared reply class, its ``call`` filled in when left 0
            try:
                if type(answer) is int:
                    bodies = self._int_bodies.get(m_type)
                    if bodies is None:
                        bodies = self._int_bodies_for(m_type)
                    if bodies is not None:
                        body = bodies.get(answer)
                        if body is None:
                            body = self._int_reply[m_type]._quick_reply(m_type, 0, answer)
                            if -_KEPT_ANSWERS <= answer <= _KEPT_ANSWERS:
                                bodies[answer] = body
                        request.replied = True
                        self.send_reply(msg, body)
                        return
                else:
                    copy = WITH_CALL.get(type(answer))
                    if copy is not None:
                        body = copy(answer, m_type) if answer.call == 0 else answer
                        request.replied = True
                        self.send_reply(msg, body)
                        return
            except Exception:
                self._bad_answer(request, answer)
                return
        if type(answer) is int or isinstance(answer, Payload) \
                or not isinstance(answer, _Coroutine):
            try:
                request.reply(answer)
            except Exception:
                self._bad_answer(request, answer)
            return
        if self.nursery is None:
            answer.close()
            self.log.error("async handler for type %d without a running server", m_type)
            request.fail(errno.EAGAIN)
            return
        self.nursery.start_soon(self._finish_async, request, answer)

    def _reply_checked(self, request: Request, answer: Any) -> None:
        """``request.reply(answer)``; a handler that answered and *then* returned its
        answer too, or returned nonsense, must not take the server down."""
        try:
            request.reply(answer)
        except Exception:
            self._bad_answer(request, answer)

    def _bad_answer(self, request: Request, answer: Any) -> None:
        self.log.exception("handler for type %d gave a bad answer %r", request.msg.m_type, answer)
        if not request.replied:
            request.fail(errno.EIO)

    def _fail_unless_replied(self, request: Request, err: int) -> None:
        if request.replied:   # it answered, then failed: the answer stands
            self.log.warning("handler for type %d failed (errno %d) after replying",
                             request.msg.m_type, err)
        else:
            request.fail(err)

    async def _finish_async(self, request: Request, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            answer = await coro
        except SysError as exc:
            self._fail_unless_replied(request, exc.errno)
        except Exception:
            self.log.exception("async handler for type %d failed", request.msg.m_type)
            self._fail_unless_replied(request, errno.EIO)
        else:
            if answer is not None:
                self._reply_checked(request, answer)

    def _answer_protocol_error(self, exc: ProtocolError) -> None:
        source = getattr(exc, "m_source", None)
        self.log.warning("malformed message from %s: %s", source, exc)
        if source is None:
            return
        answer = error_reply_for(exc.m_type, exc.errno)
        self.send_reply(make_message(source, exc.req_id or 0, answer), answer)

