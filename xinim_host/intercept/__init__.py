"""The interceptor's mechanism layer: ptrace + seccomp, no XINIM semantics
(which call means what is the kernel's trap policy: ``kernel/renumber.py``,
``kernel/trap/``).  It imports no other xinim_host package.

Modules, each named for its step:

* ``tracer``   -- ``Tracer.run()``: fork, seize, filter, exec; the SIGCHLD pump
  and routing of every stop; ``TraceeEvents`` (what a dispatcher implements)
* ``tracee``   -- ``Tracee``: one traced thread, its state machine and the
  actions (complete / host_run / inject / restart) applied at a syscall stop
* ``actions``  -- Complete, HostRun, Inject, Restart, Pending (handler answers)
* ``seccomp``  -- the BPF filter (trapped set, arch check, x32)
* ``memory``   -- tracee memory (process_vm_readv/writev, /proc/PID/mem)
* ``regs``     -- ``user_regs_struct``, GETREGS/SETREGS
* ``ptrace_ops`` / ``_libc`` -- raw constants and ctypes entry points
"""
from .actions import Action, Complete, HostRun, Inject, Pending, Restart, ResultCallback
from .memory import TraceeFault
from .tracee import NotParked, Tracee, TState
from .tracer import BaseEvents, TraceeEvents, Tracer

__all__ = [
    "Action",
    "BaseEvents",
    "Complete",
    "HostRun",
    "Inject",
    "NotParked",
    "Pending",
    "Restart",
    "ResultCallback",
    "TState",
    "Tracee",
    "TraceeEvents",
    "TraceeFault",
    "Tracer",
]
