"""From a tracee's stop to the kernel dispatcher and back (the tracer's
``TraceeEvents``).

A trapped Linux syscall is looked up in the one renumbering table; the kernel
gets the XINIM number with a context (the caller's XINIM ids, its six argument
registers, its memory, its host half) and runs the handler as far as it goes.
Each step it returns becomes a tracer action (``flight.InFlight.action``):

* a result -> ``Complete`` (the host kernel skips the call); failures that are
  Linux restart codes become ``Restart`` (the signal is taken first), and a
  write's EPIPE raises SIGPIPE through PM first;
* a ``HostStep`` (MM's mmap made real, the exec itself) -> ``Inject`` /
  ``HostRun``, and the host's result goes back into the handler;
* waiting (a pipe read, a blocking wait4) -> ``Pending``: the tracee stays
  stopped until the step that answers it arrives.

Forks, execs, group stops, continues and deaths become notices to PM and MM;
new tasks are named by PM before their first call runs.
"""
from __future__ import annotations

import errno
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from ...intercept.actions import Complete, HostRun, Pending, Restart, complete
from ...intercept.tracee import Tracee
from ...lib import protocol as p
from ...lib.errors import SysError
from ...lib.ipc import Pending as IpcPending
from ...lib.syscalls import Sys
from .. import renumber
from ..calls.base import SyscallContext
from ..calls.memory import files_shared, forget_layout, image_loaded, process_gone
from ..dispatch import SYSCALLS
from ..kernel import ROOT, Kernel
from ..renumber import Action as RouteAction
from .flight import ERESTART_RESTARTBLOCK, ERESTARTSYS, InFlight, TraceeMemory
from .notices import Notices
from .pm_host import PmHost
from .tasks import TaskDirectory, TaskEntry


if TYPE_CHECKING:
    from .trace import Strace

_DISPATCHED = renumber.DISPATCHED
log = logging.getLogger(__name__)

CLONE_VM = 0x100
CLONE_FILES = 0x400
CLONE_VFORK = 0x4000
CLONE_THREAD = 0x10000
# Writes whose EPIPE comes with SIGPIPE (Linux pipe_write; sockets without MSG_NOSIGNAL).
_PIPE_WRITES = frozenset({int(Sys.WRITE), int(Sys.WRITEV), int(Sys.PWRITE64),
                          int(Sys.PWRITEV)})
# Socket sends: which argument holds the MSG_* flags (MSG_NOSIGNAL: EPIPE without SIGPIPE).
_SOCKET_SENDS = {int(Sys.SENDTO): 3, int(Sys.SENDMSG): 2, int(Sys.SENDMMSG): 3}
MSG_NOSIGNAL = 0x4000


class SyscallRouter:
    """The ``TraceeEvents`` of a booted system: every trapped syscall goes here."""

    def __init__(self, kernel: Kernel, *, pm: Any = None, root_parent: int = p.INIT_PID,
                 trace: Strace | None = None) -> None:
        """``pm``: the Process Manager of the booted system, when it is in this
        process; it gets ``pm_host`` as its host half (signals reach real tasks,
        kernel sleeps are interruptible)."""
        self.kernel = kernel
        self.lattice = kernel.lattice
        self.root_parent = root_parent
        self.trace = trace
        self.tasks = TaskDirectory()
        self.notices = Notices(kernel.lattice, kernel.pid)
        self.pm_host = PmHost(kernel, self.tasks, self.notices, pm_attached=pm is not None)
        # ENOSYS'd Linux calls (name -> times): listed once, at exit (quiet by
        # default: the program's stderr is the program's)
        self.unsupported: dict[str, int] = {}
        self.stdio_node = 0    # joined: the node whose terminal the first process gets
        self.root_image: tuple[bytes, list[bytes]] | None = None   # its XINIM path, argv
        self.root_cwd: bytes | None = None   # where the first process starts (default: /)
        self.root_envc = 0     # how many environment strings it was given (for --trace)
        # host tgids whose memory another task may change at the same moment
        # (``InFlight.sole_thread``): a thread was made (the count is asked
        # then), or a CLONE_VM process other than a vfork child shares it
        self.shared_vm: set[int] = set()
        self.vm_siblings: set[int] = set()
        if pm is not None:
            pm.attach_host(self.pm_host)

    # --- tracer callbacks -----------------------------------------------------------

    def on_syscall(self, tracee: Tracee, nr: int, args: tuple[int, ...]) -> Any:
        xinim = _DISPATCHED.get(nr)
        if xinim is not None:            # the common case: a served call of a named task
            entry = self.tasks.tasks.get(tracee.tid)
            if entry is not None and entry.ready:
                return self.dispatch(tracee, entry, xinim, nr, args)
        route = renumber.route(nr)
        if route.action is RouteAction.HOST:
            return HostRun()
        if route.action is RouteAction.ENOSYS or route.xinim is None:
            seen = self.unsupported.get(route.linux_name, 0)
            self.unsupported[route.linux_name] = seen + 1
            if not seen:
                log.debug("%s (Linux %d): not supported -> ENOSYS", route.linux_name, nr)
            if self.trace is not None:
                self.trace.enosys(self.tasks.xinim_pid(tracee.tid), route.linux_name, args,
                                  TraceeMemory(tracee))
            return Complete(-errno.ENOSYS)
        entry = self.tasks.tasks.get(tracee.tid)
        if entry is None or not entry.ready:
            # PM has not named this task yet (or the servers are still being told
            # about it): hold the call until they have.
            self.tasks.entry(tracee.tid).waiting.append(
                lambda: tracee.resume(self.on_syscall(tracee, nr, args)))
            return Pending
        return self.dispatch(tracee, entry, int(route.xinim), nr, args)

    def dispatch(self, tracee: Tracee, entry: TaskEntry, xinim: int, linux_nr: int,
                 args: tuple[int, ...]) -> Any:
        flight = InFlight(self, tracee, entry, xinim, linux_nr, args)
        kernel = self.kernel
        pid = entry.pid
        creds = kernel.creds.get(pid, ROOT)
        mem = entry.mem
        if mem is None or mem.tracee is not tracee:   # one per task (a thread's exec moves it)
            mem = entry.mem = TraceeMemory(tracee)
        # positional: SyscallContext's field order (keywords cost twice as much)
        ctx = SyscallContext(pid, args, mem, creds.uid, creds.euid, creds.gid, creds.egid,
                             flight, entry.tid or pid)
        step = kernel.start(xinim, ctx, flight.on_step)
        flight.busy = False
        if type(step) is int:           # answered at once (``flight.action``, inline)
            return flight.finish(step)
        if step is None:
            entry.flight = flight       # parked: a signal may have to answer it
            self.pm_host.start_watch()
            return Pending
        return flight.action(step)

    def outcome(self, flight: InFlight, result: int) -> Any:
        """The action for a failed call: restart codes become ``Restart`` (the signal
        is taken first), and a write's EPIPE raises SIGPIPE first."""
        if -ERESTART_RESTARTBLOCK <= result <= -ERESTARTSYS:
            if result == -ERESTART_RESTARTBLOCK:
                return Complete(-errno.EINTR)
            return Restart()
        if result == -errno.EPIPE and (flight.xinim in _PIPE_WRITES or (
                flight.xinim in _SOCKET_SENDS
                and not flight.args[_SOCKET_SENDS[flight.xinim]] & MSG_NOSIGNAL)):
            return self._raise_then(flight, signal.SIGPIPE, Complete(result))
        return complete(result)

    def _raise_then(self, flight: InFlight, sig: int, action: Any) -> Any:
        """Have PM generate ``sig`` for the calling thread, then ``action``."""
        try:
            answer = self.lattice.call(self.kernel.pid, p.PM_PID,
                                       p.ProcTkill(caller=self.pm_host.kill_caller(flight.entry.tid),
                                                   tid=flight.entry.tid, sig=sig))
        except SysError as exc:
            log.warning("signal %d for %d: %s", sig, flight.entry.tid, exc)
            return action
        if isinstance(answer, IpcPending):
            answer.add_done_callback(lambda _msg: flight.tracee.resume(action))
            return Pending
        return action

    def trace_line(self, flight: InFlight, result: int) -> None:
        assert self.trace is not None
        entry = SYSCALLS.get(flight.xinim)
        self.trace.call(self.tasks.xinim_pid(flight.tracee.tid),
                        renumber.route(flight.linux_nr).linux_name, flight.args, result,
                        flight.tracee, xinim_nr=flight.xinim,
                        xinim_name=entry.name if entry else "?",
                        server=entry.owner.upper() if entry else "?",
                        elapsed_ns=time.perf_counter_ns() - flight.started)

    def on_signal(self, tracee: Tracee, sig: int) -> None:
        """A signal is being delivered (only asked for while tracing)."""
        if self.trace is not None:
            self.trace.signal(self.tasks.xinim_pid(tracee.tid), sig, tracee.siginfo(),
                              self.tasks.xinim_pid)

    def on_spawn(self, parent: Tracee, child: Tracee, clone_flags: int) -> None:
        parent_entry = self.tasks.tasks.get(parent.tid)
        parent_tid = parent_entry.tid if parent_entry and parent_entry.tid else self.root_parent
        thread_of = parent_entry.pid if clone_flags & CLONE_THREAD and parent_entry else 0
        self.tasks.entry(child.tid).tgid = child.tgid
        if clone_flags & CLONE_THREAD or child.tgid == parent.tgid:
            self.shared_vm.add(child.tgid)
        else:
            forget_layout(child.tgid)       # a reused tgid: the count was another's
            if clone_flags & CLONE_FILES:   # one host fd table, two processes
                files_shared(child.tgid)
                files_shared(parent.tgid)
            self.shared_vm.discard(child.tgid)
            self.vm_siblings.discard(child.tgid)
            if clone_flags & CLONE_VM:
                # the parent's VMA count will include what the child maps
                forget_layout(parent.tgid)
                if not clone_flags & CLONE_VFORK:
                    # two processes, one address space, both running
                    self.shared_vm.update((child.tgid, parent.tgid))
                    self.vm_siblings.update((child.tgid, parent.tgid))
                elif parent.tgid in self.shared_vm:
                    # a vfork stops only the calling thread: the others run on
                    self.shared_vm.add(child.tgid)
                    self.vm_siblings.add(child.tgid)
        self._register(child.tid, parent_tid, clone_flags, thread_of,
                       parent_pid=parent_entry.pid if parent_entry else 0)

    def on_exec(self, tracee: Tracee, former_tid: int) -> None:
        tasks = self.tasks.tasks
        image_loaded(tracee.tgid)           # a new image: its VMAs are counted afresh
        self.kernel.socks.clear()           # its close-on-exec fds are gone (another
                                            # thread's send may have looked during exec)
        self.shared_vm.discard(tracee.tgid)  # and it is single-threaded, with its own mm
        self.vm_siblings.discard(tracee.tgid)
        if former_tid != tracee.tid and former_tid in tasks:
            # a thread exec'd: it takes the leader's tid; the other threads are gone
            # (PM's exec commit forgot them; their deaths are not reported)
            tasks[tracee.tid] = tasks.pop(former_tid)
        if tracee.tid not in tasks:
            # The program xinim-run started: a child of init (or of the caller).
            self.tasks.entry(tracee.tid).tgid = tracee.tgid
            self._register(tracee.tid, self.root_parent, signal.SIGCHLD, 0, root=True)
        else:
            # the new image has no shared file map yet (the old one's were flushed)
            self.kernel.write_backs.discard(self.tasks.xinim_pid(tracee.tid))
            layout = self._mm_layout(tracee.tid)
            if layout is not None:
                self.notices.send(p.MM_PID, layout)

    def on_exit(self, tracee: Tracee, status: int) -> None:
        entry = self.tasks.gone(tracee.tid)
        tgid = tracee.tgid
        if tracee.tid == tgid:
            process_gone(tgid)
            if tgid in self.shared_vm and not self.tasks.has_process(tgid):
                self.shared_vm.discard(tgid)
                self.vm_siblings.discard(tgid)
        if entry is None:
            return
        if not entry.pid:
            # died before PM named it: its naming, when it comes, reports the death
            self.tasks.died_unnamed[tracee.tid] = status
            return
        if entry.flight is not None:    # a late answer must not reach a dead tracee
            entry.flight.abandoned = True
            entry.flight = None
        if self.trace is not None:
            self.trace.exited(entry.pid, status)
        self._task_gone(entry.pid, tracee.tid, status)

    def _task_gone(self, pid: int, host_tid: int, status: int) -> None:
        """A named host task died: PM hears of it, and the kernel's copy of the
        process's ids goes with its last task (PM can reuse the pid only later,
        after this report)."""
        if not self.tasks.has_pid(pid):
            self.kernel.drop_creds(pid)
        self.notices.send(p.PM_PID, p.ProcTaskExited(host_tid=host_tid, status=status))

    def on_stop(self, tracee: Tracee, sig: int) -> None:
        """The task entered a group stop (SIGSTOP, SIGTSTP, Ctrl-Z...)."""
        if self.tasks.xinim_pid(tracee.tid):
            self.notices.send(p.PM_PID, p.ProcTaskStopped(host_tid=tracee.tid, sig=sig))

    def on_continue(self, tracee: Tracee) -> None:
        """SIGCONT ended the task's group stop."""
        if self.tasks.xinim_pid(tracee.tid):
            self.notices.send(p.PM_PID, p.ProcTaskContinued(host_tid=tracee.tid))

    # --- naming new tasks ------------------------------------------------------------

    def _register(self, host_tid: int, parent_tid: int, flags: int, thread_of: int,
                  root: bool = False, parent_pid: int = 0) -> None:
        """Ask PM to name a new host task; its held syscalls run once it has."""
        answer = self.lattice.call(self.kernel.pid, p.PM_PID,
                                   p.ProcFork(parent_pid=parent_tid, child_host_pid=host_tid,
                                              flags=flags))

        def named(msg: p.Message) -> None:
            died = self.tasks.died_unnamed.pop(host_tid, None)
            if msg.body.error:
                self.tasks.tasks.pop(host_tid, None)
                log.error("PM refused host task %d: %s", host_tid, os.strerror(msg.body.error))
                if died is None:
                    os.kill(host_tid, signal.SIGKILL)
                return
            body = msg.body
            pid = thread_of or body.result
            if not thread_of:
                # PM's ids for the new process, whatever an earlier one of that pid had
                self.kernel.set_creds(pid, body.uid, body.euid, body.gid, body.egid)
                # MM copied the parent's record: its write-back maps come along
                if parent_pid in self.kernel.write_backs:
                    self.kernel.write_backs.add(pid)
            if died is not None:
                # it came and went before PM named it (killed at once)
                self.tasks.tasks.pop(host_tid, None)
                self.tasks.named_then_gone(host_tid, body.result)
                self._task_gone(pid, host_tid, died)
                return
            entry = self.tasks.entry(host_tid)
            entry.tid = body.result
            entry.pid = pid
            notices: list[tuple[int, p.Payload]] = []
            if root:
                # The program xinim-run started was exec'd by the host before XINIM
                # knew it: PM records its image, MM imports the host's layout (a
                # fork child has MM's copy of its parent's instead), and a joined
                # node's first process talks to the terminal that node passed.
                if self.root_image is not None:
                    path, argv = self.root_image
                    if self.trace is not None:
                        self.trace.first_exec(entry.pid, host_tid, path, argv, self.root_envc)
                    notices.append((p.PM_PID, p.ProcExec(caller=entry.pid, path=path,
                                                         argv=b"\0".join(argv), envp=b"")))
                layout = self._mm_layout(host_tid)
                if layout is not None:
                    notices.append((p.MM_PID, layout))
                if self.root_cwd:
                    notices.append((p.VFS_PID, p.VfsChdir(caller=entry.pid,
                                                          path=self.root_cwd)))
                if self.stdio_node:
                    node, self.stdio_node = self.stdio_node, 0
                    notices.append((p.VFS_PID, p.VfsNodeStdio(pid=entry.pid, node=node)))
            self.notices.in_order(notices, lambda: wake_all(entry))

        def wake_all(entry: TaskEntry) -> None:
            entry.ready = True
            waiting, entry.waiting = entry.waiting, []
            for wake in waiting:
                wake()

        if isinstance(answer, IpcPending):
            answer.add_done_callback(named)
        else:
            named(answer)

    def _mm_layout(self, host_tid: int) -> p.Payload | None:
        """MM's notice of an image the host has just loaded (an exec; the first
        program): MM replaces the record with the host's layout -- PM, whose
        exec told the VFS, leaves MM to this (pm/exec.py)."""
        pid = self.tasks.xinim_pid(host_tid)
        return p.MmExecLayout(pid=pid, host_pid=host_tid, fresh=1) if pid else None

    async def settle(self, timeout: float = 2.0) -> None:
        """Wait (a bounded while) for the notices still in flight."""
        await self.notices.settle(timeout)
