"""Issue 15: O_ASYNC + F_SETOWN (a process group) + F_SETSIG on a pipe: a write by
a child signals the owner before the child's SIGCHLD.  Prints the signal number."""
import signal, os, fcntl, time
r, w = os.pipe()
os.setpgid(0, 0); fcntl.fcntl(r, fcntl.F_SETOWN, -os.getpgrp())
fcntl.fcntl(r, 10, signal.SIGUSR1)             # F_SETSIG
fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) | os.O_ASYNC)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGIO})
pid = os.fork()
if pid == 0:
    time.sleep(0.5); os.write(w, b"c"); os._exit(0)
try:
    print("got", signal.sigtimedwait({signal.SIGUSR1, signal.SIGIO}, 5).si_signo)
except OSError as e:
    print("err", e)
os.waitpid(pid, 0)
