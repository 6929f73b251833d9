"""The kernel (PID 0): runs dispatcher handlers and resumes them when servers answer."""
from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Generator, Protocol

import trio

from .calls.base import Await, HostCall, Sendrec, SyscallContext
from .dispatch import SYSCALLS
from ..lib.errors import SysError
from ..lib.ipc import Lattice, Pending
from ..lib.protocol import KERNEL_PID
from ..lib.syscalls import Sys
from ..intercept.values import PlainValue

log = logging.getLogger(__name__)

class HostStep(PlainValue):
    """The handler needs the host kernel to run ``op`` in the calling process.
    Whoever runs it gives the host's result (``-errno`` on failure) to
    ``call.resume_host(value)``, which returns the next step.  (A plain class:
    one per host call, and a frozen dataclass's ``__init__`` is twice the cost.)"""

    __slots__ = ("op", "call")

    def __init__(self, op: HostCall, call: "RunningCall") -> None:
        self.op = op
        self.call = call


#: What a syscall does next: an ``int`` is its result; a :class:`HostStep` asks
#: the host to run something first; ``None`` means it waits (parked) and the
#: next step comes later through ``on_step``.
Step = int | HostStep | None
OnStep = Callable[[int | HostStep], None]


@dataclass(frozen=True, slots=True)
class Creds:
    """The kernel's copy of a process's ids (PM owns them)."""

    uid: int = 0
    euid: int = 0
    gid: int = 0
    egid: int = 0


ROOT = Creds()


#: Calls that never change an fd table nor a description's flags (so the socket
#: refs in ``Kernel.socks`` stay true across them); any other call empties it.
KEEPS_SOCKS = frozenset({
    Sys.SENDTO, Sys.RECVFROM, Sys.SENDMSG, Sys.EPOLL_WAIT, Sys.EPOLL_PWAIT, Sys.EPOLL_PWAIT2,
    Sys.READ, Sys.WRITE, Sys.GETPID, Sys.GETPPID})
#: Memory calls keep them too unless the caller has write-back fds (a munmap or
#: msync may close one).
KEEPS_SOCKS_NO_WB = frozenset({Sys.MMAP, Sys.MUNMAP, Sys.MREMAP})


class ConsoleSink(Protocol):
    def write(self, data: bytes) -> int: ...


class Kernel:
    """Dispatches XINIM syscalls.  ``start`` is synchronous so the interceptor can
    complete most syscalls without leaving its loop; a handler that must wait is
    resumed by the callback of the reply it waits for."""

    pid = KERNEL_PID

    def __init__(self, lattice: Lattice, console: ConsoleSink, pid: int = KERNEL_PID) -> None:
        self.pid = pid            # KERNEL_PID, or a joined node's kernel pid
        self.lattice = lattice
        self.console = console
        self.endpoint = lattice.register(pid)
        self.nursery: trio.Nursery | None = None   # for Await ops; set by boot
        self.unknown_calls = 0
        self.creds: dict[int, Creds] = {}
        # XINIM pids in whose memory MM may hold a MAP_SHARED file map with a
        # write-back fd (the kernel asked the VFS for that fd: calls/memory.py),
        # inherited at fork: only these have anything to flush at exit and exec
        self.write_backs: set[int] = set()
        # uname's nodename: the host's, as a container without its own UTS namespace
        self.hostname: bytes = os.uname().nodename.encode()
        # The tracer may pin itself, and so every tracee, to one CPU (a cheaper
        # stop); a program must still see the CPUs it may really use (nproc):
        # sched_getaffinity answers ``cpus_real`` where the host says ``cpus_pinned``.
        self.cpus_pinned: frozenset[int] | None = None
        self.cpus_real: frozenset[int] | None = None
        # (pid, fd) -> the VFS's answer to VfsSockOf for a socket fd (calls/net.py
        # ``sock_ref``), so a send/recv asks NET only.  Exact because it is emptied
        # at the start and at every step of any call not in KEEPS_SOCKS (close,
        # dup2, fcntl, ioctl, fork, exec... of any process: a description may be
        # shared), and used only while no other node's kernel can reach the VFS.
        self.socks: dict[tuple[int, int], Any] = {}

    # --- dispatching ----------------------------------------------------------

    def start(self, nr: int, ctx: SyscallContext, on_step: OnStep) -> Step:
        """Run syscall ``nr`` as far as it goes without waiting and return that
        step: its result (``-errno`` on failure), a :class:`HostStep`, or ``None``
        when it waits -- then ``on_step`` gets the next step once it comes."""
        entry = SYSCALLS.get(nr)
        if entry is None:
            self.unknown_calls += 1
            log.warning("pid %d: unknown XINIM syscall %d -> ENOSYS", ctx.pid, nr)
            return -errno.ENOSYS
        forget = nr not in KEEPS_SOCKS and (nr not in KEEPS_SOCKS_NO_WB
                                            or ctx.pid in self.write_backs)
        if forget and self.socks:
            self.socks.clear()
        gen = entry.handler(self, ctx)
        # The common case inline, without a RunningCall: requests answered at once
        # until the handler returns.  Anything else -- a wait, a host step, a failed
        # send to throw in -- goes on in a RunningCall from where this stopped.
        call = self.lattice.call
        pid = self.pid
        value: Any = None
        while True:
            try:
                op = gen.send(value)
            except StopIteration as stop:
                return stop.value
            except SysError as err:
                return -err.errno
            except Exception:
                log.exception("syscall handler %s failed", gen.__name__)
                return -errno.EIO
            if type(op) is not Sendrec:
                return RunningCall(self, gen, ctx, on_step, forget).step(None, None, True, op)
            try:
                value = call(pid, op.dst, op.body)
            except SysError as err:
                return RunningCall(self, gen, ctx, on_step, forget).step(None, err, True)
            if type(value) is Pending:
                value.add_done_callback(RunningCall(self, gen, ctx, on_step, forget).resume)
                return None

    async def syscall(self, nr: int, ctx: SyscallContext) -> int:
        """``start`` for trio code: waits for the result."""
        done = trio.Event()
        box: list[int] = []

        def finish(step: int | HostStep) -> None:
            assert isinstance(step, int)   # no host side: HostCalls fail with ENOSYS
            box.append(step)
            done.set()

        result = self.start(nr, ctx, finish)
        if result is not None:
            assert isinstance(result, int)
            return result
        await done.wait()
        return box[0]

    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.nursery is None:
            raise SysError(errno.EAGAIN, "kernel not booted: nothing to run waits on")
        self.nursery.start_soon(fn, *args)

    # --- services for handlers ------------------------------------------------------

    def set_creds(self, pid: int, uid: int, euid: int, gid: int, egid: int) -> None:
        """The kernel's copy of a process's ids, always taken from PM's (a fork's
        or exec's reply, a refresh after an id change): it serves getuid and
        friends itself."""
        self.creds[pid] = Creds(uid, euid, gid, egid)

    def drop_creds(self, pid: int) -> None:
        """The process's last host task is gone: its copy goes with it, so a later
        process under the same pid can never find it (nor its write-back mark)."""
        self.creds.pop(pid, None)
        self.write_backs.discard(pid)

    def creds_of(self, pid: int) -> "Creds":
        return self.creds.get(pid, ROOT)

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    def process_endpoint(self, pid: int) -> None:
        """A user process's own lattice endpoint, made on first use."""
        endpoint = self.lattice.endpoints.get(pid)
        if endpoint is None or endpoint.closed:
            self.lattice.register(pid)


_NEXT: Any = object()   # RunningCall.step: no operation in hand, ask the handler for one


class RunningCall:
    """One syscall in progress: its handler generator and where its steps go."""

    __slots__ = ("kernel", "gen", "ctx", "on_step", "forget")

    def __init__(self, kernel: Kernel, gen: Generator[Any, Any, int], ctx: SyscallContext,
                 on_step: OnStep, forget: bool = True) -> None:
        self.kernel, self.gen, self.ctx, self.on_step = kernel, gen, ctx, on_step
        self.forget = forget    # empty Kernel.socks at each step (see KEEPS_SOCKS)

    def resume(self, value: Any) -> None:
        """A wait ended (a reply, an Await): the next step goes to ``on_step``."""
        self.step(value, None)

    def fail(self, exc: BaseException) -> None:
        self.step(None, exc)

    def resume_host(self, value: int) -> Step:
        """The host ran this call's HostStep with result ``value``: the next step."""
        return self.step(value, None, sync=True)

    def step(self, value: Any, exc: BaseException | None, sync: bool = False,
             op: Any = _NEXT) -> Step:
        """Run the handler until it finishes, needs the host or has to wait; with
        ``sync`` that step is returned, else handed to ``on_step``.  ``op``: an
        operation the handler yielded already (``Kernel.start``), acted on first."""
        gen = self.gen
        if self.forget:   # what the servers did for this call so far may change an fd
            self.kernel.socks.clear()
        while True:
            if op is _NEXT:
                try:
                    op = gen.throw(exc) if exc is not None else gen.send(value)
                except StopIteration as stop:
                    result = stop.value
                    break
                except SysError as err:
                    result = -err.errno
                    break
                except Exception:
                    log.exception("syscall handler %s failed", gen.__name__)
                    result = -errno.EIO
                    break
            value, exc = None, None
            if type(op) is Sendrec:     # the common step: a request to a server
                kernel = self.kernel
                dst, body, op = op.dst, op.body, _NEXT
                try:
                    answer = kernel.lattice.call(kernel.pid, dst, body)
                except SysError as err:
                    exc = err
                    continue
                if type(answer) is Pending:
                    answer.add_done_callback(self.resume)
                    return None
                value = answer
                continue
            try:
                if isinstance(op, Await):
                    self.kernel.spawn(self._await, op)
                    return None
                if isinstance(op, HostCall):
                    if self.ctx.host is None:
                        raise SysError(errno.ENOSYS, "no host side for this caller")
                    host_step = HostStep(op, self)
                    if op.tail:         # the host's result is final: done here
                        gen.close()
                    if sync:
                        return host_step
                    self.on_step(host_step)
                    return None
            except SysError as err:   # could not even start waiting: the handler hears why
                exc = err
                op = _NEXT
                continue
            exc = TypeError(f"handler yielded {op!r}")
            op = _NEXT
        if sync:
            return result
        self.on_step(result)
        return None

    async def _await(self, op: Await) -> None:
        try:
            value = await op.make()
        except SysError as err:
            self.fail(err)
        except Exception:
            log.exception("kernel wait for %s failed", self.gen.__name__)
            self.fail(SysError(errno.EIO))
        else:
            self.resume(value)

