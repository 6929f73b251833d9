"""What every syscall handler uses: the operations it may wait on, its context,
and helpers to copy arguments in.

A handler is a generator ``handler(kernel, ctx)``: it copies its arguments in from
user memory, ``yield``s the operations it has to wait for -- a :class:`Sendrec`
to a server, an :class:`Await` of kernel-side work such as a sleep -- and
``return``s the call's result.  Raising :class:`SysError` fails the call with
``-errno``.  Generators let one handler run straight through when every server
answers at once (the common case: no task switch at all) and park mid-way when
one does not (a pipe read), the way MINIX servers suspend a caller; the driver in
``kernel.Kernel`` does the resuming.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generator, Protocol

from ...lib import linux_abi as abi
from ...lib import protocol as p
from ...lib.errors import SysError
from ...lib.grants import GrantTable, Segment
from ...lib.usermem import UserMemory
from ...intercept.values import PlainValue

if TYPE_CHECKING:
    from ..kernel import Kernel


class Sendrec(PlainValue):
    """Wait for a server's reply to ``body``.  (A plain class: one is made for
    every request a handler sends, and a frozen dataclass's ``__init__`` costs
    twice as much.)"""

    __slots__ = ("dst", "body")

    def __init__(self, dst: int, body: p.Payload) -> None:
        self.dst = dst
        self.body = body


@dataclass(frozen=True, slots=True)
class Await:
    """Wait for kernel-side async work (a timer, an IPC receive); its result is sent back."""
    make: Callable[[], Awaitable[Any]]


class HostCall(PlainValue):
    """Have the host kernel run a Linux syscall in the calling process; its result
    (``-errno`` on failure) is sent back.  ``nr=None`` runs the trapped call itself,
    with ``args`` (when given) replacing its arguments -- the "delegate, then host"
    routes of the renumbering table.  Only traced processes have a host side.
    ``tail``: the host's result is the call's result, returned to the program as
    it is: the handler is closed at once (its ``finally`` runs) and never resumed,
    and the tracer skips the exit stop.  Only for a call that cannot fail on the
    host, or whose failure needs nothing undone; never while tracing.
    (A plain class, as Sendrec: every memory call makes one, and a frozen
    dataclass's ``__init__`` costs twice as much.  Never assigned to.)"""

    __slots__ = ("nr", "args", "tail")

    def __init__(self, nr: int | None, args: tuple[int, ...] | None = None,
                 tail: bool = False) -> None:
        self.nr = nr
        self.args = args
        self.tail = tail


class HostSide(Protocol):
    """The host half of a process, provided by the trap layer (a ``HostCall`` the
    handler yields is handed back as a ``kernel.HostStep``, not through here)."""

    host_pid: int

    def owns_thread(self, host_tid: int) -> bool: ...
    def xinim_tid_of(self, host_tid: int) -> int: ...
    def stack_pointer(self) -> int: ...
    def sole_thread(self) -> bool: ...
    def untraced(self) -> bool: ...
    def calls_seen(self) -> int: ...


Op = Sendrec | Await | HostCall
SyscallGen = Generator[Op, Any, int]


@dataclass(slots=True, init=False)
class SyscallContext:
    """Who is calling, with what arguments, and how to reach their memory."""
    pid: int
    args: tuple[int, ...]
    mem: UserMemory
    uid: int = 0
    euid: int = 0
    gid: int = 0
    egid: int = 0
    host: HostSide | None = None   # None: a kernel-side caller (init, tests)
    tid: int = 0                   # the calling thread's XINIM tid (0: = pid)

    # The dataclass's ``__init__`` and ``__post_init__`` in one (one is made per
    # trapped call): the same parameters, the same defaults.
    def __init__(self, pid: int, args: tuple[int, ...], mem: UserMemory, uid: int = 0,
                 euid: int = 0, gid: int = 0, egid: int = 0, host: HostSide | None = None,
                 tid: int = 0) -> None:
        self.pid = pid
        self.args = args
        self.mem = mem
        self.uid = uid
        self.euid = euid
        self.gid = gid
        self.egid = egid
        self.host = host
        self.tid = tid or pid


def ask(dst: int, body: p.Payload) -> Generator[Op, Any, Any]:
    """Sendrec ``body`` and return the reply payload; an error reply raises SysError."""
    reply = (yield Sendrec(dst, body)).body
    if reply.error:
        raise SysError(reply.error)
    return reply


def ask_granted(k: "Kernel", c: SyscallContext, grants: GrantTable, dst: int, mem: UserMemory,
                segs: tuple[Segment, ...], access: int,
                body: Callable[[int], p.Payload]) -> Generator[Op, Any, Any]:
    """``ask(dst, body(gid))`` with a grant of ``segs`` of ``mem`` (the caller's) made
    for ``dst``: the grant lives for this one request and is revoked however it ends."""
    g = grants.grant(k.pid, c.pid, dst, mem, segs, access)
    try:
        reply = (yield Sendrec(dst, body(g.gid))).body    # ``ask``, inline
        if reply.error:
            raise SysError(reply.error)
        return reply
    finally:
        grants.revoke(g)


def path_arg(c: SyscallContext, addr: int) -> bytes:
    """A path from user memory: ENAMETOOLONG when it does not end within PATH_MAX
    bytes (NUL included), as Linux's getname."""
    raw = c.mem.read_cstring(addr, p.PATH_MAX_WIRE + 1)
    if len(raw) > p.PATH_MAX_WIRE:
        raise SysError(errno.ENAMETOOLONG)
    return raw


def pointer_array(c: SyscallContext, addr: int, limit: int = 1 << 17) -> list[int]:
    """A NULL-terminated array of pointers (argv, envp) in user memory."""
    out: list[int] = []
    while addr:
        (ptr,) = abi.POINTER.unpack(c.mem.read(addr, 8))
        if ptr == 0:
            break
        out.append(ptr)
        addr += 8
        if len(out) > limit:
            raise SysError(errno.E2BIG)
    return out


def c_int(value: int) -> int:
    """A register's low 32 bits as a signed C int."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


