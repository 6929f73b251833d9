"""PM's host half (``pm.server.HostTasks``): PM decides, this acts on real tasks.

* ``signal_task`` delivers a signal PM generated to the real host task (kill /
  tgkill).  A tracee parked in a call cannot take it until it is resumed, so
  whoever holds the call answers it: PM its own waits, the VFS its blocked reads
  (``VfsCancel``), and this layer the kernel's own waits (``interrupt``: a
  nanosleep is abandoned and answered at once; the kernel's timer task then
  finishes into nothing).
* Signals the host queues behind PM's back (a host timer's SIGALRM, a kill from
  outside XINIM, Ctrl-Z on the host terminal) would wait forever for a tracee
  parked in a server; while any call is parked a watch task looks at the parked
  tracees' pending signals every ``WATCH_PERIOD`` and tells PM of new ones as the
  kernel's own kill, so the same rules answer the parked calls.  A joined node
  (PM on another node cannot reach our sleeps) ends its parked sleeps itself.
"""
from __future__ import annotations

import errno
import os
import re
import signal
from typing import TYPE_CHECKING

import trio

from ...intercept import _libc
from ...lib import protocol as p
from ...lib.hostsig import sigqueue
from ...lib.errors import SysError
from .flight import ERESTARTSYS, STOPS, InFlight

if TYPE_CHECKING:
    from ..kernel import Kernel
    from .notices import Notices
    from .tasks import TaskDirectory

SYS_TGKILL = 234
SIGRTMIN = 32               # real-time signals queue: never re-sent (they would come twice)
WATCH_PERIOD = 0.05         # seconds between looks at parked tracees' pending signals
_DISPOSITION_RE = re.compile(rb"^(SigIgn|SigCgt):\s*([0-9a-f]+)$", re.MULTILINE)
_DEFAULT_IGNORED = frozenset({signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH})



class PmHost:
    def __init__(self, kernel: "Kernel", tasks: "TaskDirectory", notices: "Notices", *,
                 pm_attached: bool) -> None:
        self.kernel, self.tasks, self.notices = kernel, tasks, notices
        self.pm_attached = pm_attached     # else PM is on another node (joined)
        self.watching = False

    # -- what PM calls ----------------------------------------------------------------
    def signal_task(self, host_tgid: int, host_tid: int, sig: int, info: bytes = b"") -> bool:
        """Deliver a signal PM generated to one of our host tasks (False: not ours),
        with the siginfo ``info`` when given (a POSIX timer's)."""
        if host_tid:
            if host_tid not in self.tasks.tasks:
                return False
            if info:
                sigqueue(host_tgid, host_tid, sig, info)
            elif _libc.syscall(SYS_TGKILL, host_tgid, host_tid, sig, 0, 0, 0) < 0:
                _libc.raise_errno(f"tgkill {host_tgid}/{host_tid}")
            return True
        if not self.tasks.has_process(host_tgid):
            return False
        if info:
            sigqueue(host_tgid, 0, sig, info)
        else:
            os.kill(host_tgid, sig)
        return True

    def interrupt(self, pid: int, err: int) -> None:
        """PM signalled XINIM process ``pid``: its threads' kernel sleeps end."""
        for entry in list(self.tasks.tasks.values()):
            flight = entry.flight
            if flight is not None and entry.pid == pid:
                flight.interrupt(err)

    def calls_parked(self, pid: int) -> bool | None:
        """May a task of XINIM process ``pid`` be in a call some server holds?  A
        call held anywhere keeps its tracee stopped in it (``Tracee.parked``: at
        its entry or at the exit of a host call, never while the host runs one),
        and one being handled right now is at its entry too.  None: ``pid`` has
        no task here (another node's, or gone)."""
        known = False
        for entry in self.tasks.tasks.values():
            if entry.pid != pid:
                continue
            known = True
            flight, mem = entry.flight, entry.mem
            if (flight is not None and flight.tracee.parked) or \
                    (mem is not None and mem.tracee.parked):
                return True
        return False if known else None

    # -- the watch ---------------------------------------------------------------------
    def start_watch(self) -> None:
        if self.watching:
            return
        try:
            self.kernel.spawn(self._watch)
        except (SysError, AttributeError):  # no kernel nursery: nothing to watch with
            return
        self.watching = True

    async def _watch(self) -> None:
        try:
            while True:
                await trio.sleep(WATCH_PERIOD)
                if not self.check_host_signals():
                    return
        finally:
            self.watching = False

    def kill_caller(self, own: int) -> int:
        """Who reports a signal to PM: the kernel; a joined node's kernel may not speak
        as the boot's, so there the process reports it to itself."""
        return p.KERNEL_PID if self.kernel.pid == p.KERNEL_PID else own

    def check_host_signals(self) -> bool:
        """Tell PM of signals pending on the host for parked tracees that PM did not
        send (as the kernel's kill: the host already has them, so PM's delivery adds
        nothing but the answers to the parked calls).  True while any call is parked."""
        parked = False
        for entry in list(self.tasks.tasks.values()):
            flight = entry.flight
            if flight is None or flight.abandoned:
                continue
            parked = True
            if not flight.tracee.parked:
                continue
            private, shared = flight.tracee.pending_signal_sets()
            for sigs, thread in ((shared, False), (private, True)):
                for sig in sigs:
                    bit = 1 << sig
                    if sig >= SIGRTMIN or flight.told & bit:
                        continue
                    flight.told |= bit
                    caller = self.kill_caller(entry.tid if thread else entry.pid)
                    # joined: the parked sleep ends once PM has answered, so PM's own
                    # delivery of this kill finds the host's signal still pending and
                    # merges with it (not a second signal, without the first's siginfo)
                    then = None if self.pm_attached else (
                        lambda f=flight, s=sig: self._interrupt_for_host_signal(f, s))
                    self.notices.send(p.PM_PID,
                                      p.ProcTkill(caller=caller, tid=entry.tid, sig=sig) if thread
                                      else p.ProcKill(caller=caller, pid=entry.pid, sig=sig),
                                      then=then)
        return parked

    def _interrupt_for_host_signal(self, flight: InFlight, sig: int) -> None:
        """A joined node: PM (on another node) cannot reach our parked sleeps
        (``interrupt``), so end one here when the host will act on ``sig``: it is
        caught, or its default action terminates or stops the process."""
        if flight.entry.flight is not flight:
            return              # answered meanwhile: the tracee may be in another call
        try:
            with open(f"/proc/{flight.tracee.tgid}/status", "rb") as f:
                text = f.read()
            masks = dict(_DISPOSITION_RE.findall(text))
            ignored = int(masks.get(b"SigIgn", b"0"), 16)
            caught = int(masks.get(b"SigCgt", b"0"), 16)
        except (OSError, ValueError):
            return
        bit = 1 << (sig - 1)
        if ignored & bit or (not caught & bit and sig in _DEFAULT_IGNORED):
            return
        flight.interrupt(ERESTARTSYS if sig in STOPS else errno.EINTR)
