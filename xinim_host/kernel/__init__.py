"""XINIM's kernel (PID 0): the dispatcher's one table (``dispatch``), its driver
(``kernel``), the call handlers (``calls/``), and the trap policy -- which Linux
call becomes which XINIM call (``renumber``) and how a trapped call reaches the
dispatcher and goes back to the program (``trap/``).  Built on ``lib`` and the
ptrace mechanism in ``intercept``; servers are reached only by IPC."""
