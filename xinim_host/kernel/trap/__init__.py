"""The trap policy: how a trapped Linux call reaches the dispatcher and goes back.

* ``adapter``  -- the tracer's callbacks (``TraceeEvents``): renumber, build the
  call's context, start it in the kernel, turn each kernel step into a tracer
  action; forks, execs, stops and deaths become notices to PM/MM
* ``flight``   -- one trapped call in progress: its host half and memory view
* ``tasks``    -- the host-tid -> XINIM tid/pid directory
* ``notices``  -- kernel notices to servers, in order, answers awaited
* ``pm_host``  -- PM's host half: signals to real tasks, and the watch for
  signals the host queued for parked tasks
* ``trace``    -- ``--trace`` output
"""
from .adapter import SyscallRouter

__all__ = ["SyscallRouter"]
