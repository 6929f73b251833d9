"""The Process Manager (PID 3).

Modules: ``server`` (PmServer: receive loop, host delivery, fast lookups),
``table`` (the call vector), ``proctable`` (PCBs), ``signals`` (default actions,
permissions, generation), ``forkexit``, ``exec``, ``wait``, ``getset``,
``sigcalls``, ``info`` (handlers by topic), ``notify`` (the seam to VFS and MM).

What the kernel sends, and when:

* ``caller`` in every request is the XINIM *tid* of the calling task (equal to
  its pid for a main thread); map host tids with ``PmServer.tid_of_host`` /
  ``pid_of_host`` or ``ProcHostToXinim``.  VFS and MM want the pid.
* After the host created a task (fork/vfork/clone event, before the child runs):
  ``ProcFork(parent_pid=<tid of the forking task>, child_host_pid=<host tid>,
  flags=<clone flags>)``; the reply is the child's pid (its tid for CLONE_THREAD).
  On an error reply the host child must be killed.
* exit / exit_group syscalls: ``ProcExit`` / ``ProcExitGroup`` (status already a
  wait status word) before the host runs them.
* Every host task death the tracer sees: ``ProcTaskExited(host_tid, status)``
  (ESRCH answers for tasks PM already forgot are harmless).
* Group stops and continues: ``ProcTaskStopped(host_tid, sig)`` /
  ``ProcTaskContinued(host_tid)``.
* wait4/waitid replies to the kernel carry ``host_pid``: reap that host zombie.
  Parked calls (wait4, waitid, sigsuspend) are answered later; a signal ends
  them with EINTR (or ``restart_errno`` for SA_RESTART handlers).
* The kernel that runs real host tasks attaches its host half
  (``PmServer.attach_host``, :class:`~.server.HostTasks`): PM then delivers
  signals through it, asks it to end the kernel's own waits a signal interrupts,
  answers restartable interruptions ERESTARTSYS, and makes a zombie waitable only
  once the host task is gone (its ``ProcTaskExited``), so the host zombie the
  parent reaps is really there.
"""
