"""The Process Manager (PID 3): receive loop, host delivery, and fast lookups.

The handlers live by topic (``forkexit``, ``exec``, ``wait``, ``getset``,
``sigcalls``, ``info``); ``table`` is the call vector; ``proctable`` the PCBs;
``signals`` the signal rules; ``notify`` the seam to VFS and MM.
"""
from __future__ import annotations

import errno
import logging
import weakref
from collections.abc import Callable
from typing import Protocol

from ..lib import protocol as p
from ..lib.ipc import Lattice
from ..lib.limits import pid_max_from_env
from ..lib.server import Server
from .notify import LatticeNotifier, PmNotifier
from .proctable import ProcTable
from .table import CALL_VECTOR
from .timers import TimerQueue

log = logging.getLogger(__name__)

SignalHost = Callable[[int, int], None]              # (host pid or tid, sig), like os.kill
SignalHostThread = Callable[[int, int, int], None]   # (host tgid, host tid, sig), like tgkill
# (host tgid, host tid or 0, sig, siginfo_t bytes), like rt_tgsigqueueinfo / rt_sigqueueinfo
QueueHost = Callable[[int, int, int, bytes], None]


class HostTasks(Protocol):
    """The kernel's host half of the processes it runs (the interceptor's router).

    ``signal_task`` delivers ``sig`` to host task ``host_tid`` of process
    ``host_tgid`` (``host_tid`` 0: to the process), with siginfo ``info`` when
    given (a timer's), and answers False when the
    task is not one of its own; ``interrupt`` ends the kernel's own waits of
    ``pid`` (a nanosleep) with ``err`` (EINTR, or a restart code);
    ``calls_parked`` says whether any task of ``pid`` may be in a call a server
    holds (None: not a process of this host half)."""

    def signal_task(self, host_tgid: int, host_tid: int, sig: int,
                    info: bytes = b"") -> bool: ...
    def interrupt(self, pid: int, err: int) -> None: ...
    def calls_parked(self, pid: int) -> bool | None: ...


class PmServer(Server):
    """``signal_host(host_pid, sig)`` delivers a real signal to a host process
    (``os.kill``); ``signal_host_thread(host_tgid, host_tid, sig)`` to one thread
    (tgkill; without it ``signal_host(host_tid, sig)`` is used).  ``notify`` is
    the seam to VFS and MM (default: lattice messages).  ``restart_errno`` is what
    a parked wait interrupted by an SA_RESTART handler answers: EINTR, or
    ``protocol.ERESTARTSYS`` once the kernel restarts calls itself.

    ``attach_host`` connects the kernel's host half (:class:`HostTasks`): signals
    then reach real host tasks through it, interrupted calls restart
    (``restart_errno`` = ERESTARTSYS), and, because it reports every host task's
    death (``ProcTaskExited``), a zombie becomes waitable only once its host task is
    gone too (``host_exits``): the parent's wait then reaps a host zombie that is
    really there, without blocking."""

    pid = p.PM_PID
    reply_type = p.PROC_REPLY
    handlers = CALL_VECTOR

    def __init__(self, lattice: Lattice, *, signal_host: SignalHost | None = None,
                 signal_host_thread: SignalHostThread | None = None,
                 notify: PmNotifier | None = None, pid_max: int | None = None,
                 queue_host: QueueHost | None = None) -> None:
        super().__init__(lattice)
        self.table = ProcTable(pid_max if pid_max is not None else pid_max_from_env())
        self.signal_host = signal_host
        self.signal_host_thread = signal_host_thread
        self.queue_host = queue_host
        self.timers = TimerQueue(self)
        self.notify: PmNotifier = notify if notify is not None else LatticeNotifier(lattice)
        self.restart_errno = errno.EINTR
        self.host_exits = False
        self.hosts: weakref.WeakSet[HostTasks] = weakref.WeakSet()

    def attach_host(self, host: HostTasks) -> None:
        """The kernel runs real host tasks through ``host`` (see the class doc)."""
        self.hosts.add(host)
        self.host_exits = True
        self.restart_errno = p.ERESTARTSYS

    # --- in-process lookups (the interceptor's fast path; no message) ------------------

    def pid_of_host(self, host_tid: int) -> int | None:
        """The XINIM pid of the process owning host task ``host_tid``."""
        task = self.table.by_host.get(host_tid)
        return task.proc.pid if task is not None else None

    def tid_of_host(self, host_tid: int) -> int | None:
        """The XINIM tid of host task ``host_tid`` (what requests carry as ``caller``)."""
        task = self.table.by_host.get(host_tid)
        return task.tid if task is not None else None

    def host_of(self, tid: int) -> int | None:
        task = self.table.tasks.get(tid)
        return task.host_tid or None if task is not None else None

    # --- host delivery ----------------------------------------------------------------------

    def _through_hosts(self, host_tgid: int, host_tid: int, sig: int, info: bytes) -> bool:
        for host in list(self.hosts):
            try:
                if (host.signal_task(host_tgid, host_tid, sig, info) if info
                        else host.signal_task(host_tgid, host_tid, sig)):
                    return True
            except OSError as exc:  # it just died: its exit report is on the way
                log.info("signal %d to host %d/%d: %s", sig, host_tgid, host_tid, exc)
                return True
        return False

    def deliver_to_process(self, host_pid: int, sig: int, info: bytes = b"") -> None:
        if self.hosts and self._through_hosts(host_pid, 0, sig, info):
            return
        try:
            if info and self.queue_host is not None:
                self.queue_host(host_pid, 0, sig, info)
            elif self.signal_host is not None:
                self.signal_host(host_pid, sig)
        except OSError as exc:      # it just died: its exit report is on the way
            log.info("signal %d to host %d: %s", sig, host_pid, exc)

    def may_be_parked(self, pid: int) -> bool:
        """Might a call of ``pid`` be held by another server (the VFS, NET)?  Only
        the host half that runs the process can say no (none of its tasks is
        stopped in a call); any other process -- a joined node's, or with no host
        half at all -- may be."""
        known = False
        for host in list(self.hosts):
            ask = getattr(host, "calls_parked", None)
            parked = ask(pid) if ask is not None else None
            if parked:
                return True
            known = known or parked is not None
        return not known

    def interrupt_kernel_waits(self, pid: int, err: int) -> None:
        """A signal for ``pid``: the kernel's own waits (sleeps) end too."""
        for host in list(self.hosts):
            host.interrupt(pid, err)

    def deliver_to_thread(self, host_tgid: int, host_tid: int, sig: int,
                          info: bytes = b"") -> None:
        if self.hosts and self._through_hosts(host_tgid, host_tid, sig, info):
            return
        try:
            if info and self.queue_host is not None:
                self.queue_host(host_tgid, host_tid, sig, info)
            elif self.signal_host_thread is not None:
                self.signal_host_thread(host_tgid, host_tid, sig)
            elif self.signal_host is not None:
                self.signal_host(host_tid, sig)
        except OSError as exc:
            log.info("signal %d to host thread %d: %s", sig, host_tid, exc)
