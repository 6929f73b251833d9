"""The kernel's copy of socket fds (Kernel.socks) stays exact: a send on an fd
number after close, reuse, dup2, another process's F_SETFL on a shared
description, FIONBIO, fork, kill -9, a thread's close, and close-on-exec.
Run natively and under xinim-run; the outputs must be the same."""
import ctypes, errno, fcntl, os, signal, socket, sys, termios, threading
libc = ctypes.CDLL(None, use_errno=True)

def send(fd, data=b"x"):
    # send(2) on a bare fd number: the result or the errno's name
    n = libc.send(fd, data, len(data), socket.MSG_DONTWAIT)
    return n if n >= 0 else errno.errorcode[ctypes.get_errno()]

if len(sys.argv) > 1:                        # after exec: the old fd was close-on-exec
    fd = int(sys.argv[1])
    print("exec: old fd", send(fd))
    keep = []
    while True:                              # new sockets until one takes fd's number
        c, d = socket.socketpair()
        keep.append((c, d))
        if d.fileno() == fd:
            c, d = d, c
        if c.fileno() == fd or len(keep) > 20:
            break
    print("exec: reused", c.fileno() == fd, send(fd, b"new"), d.recv(10))
    sys.exit(0)

class Alarm(Exception): pass
def on_alarm(sig, frame): raise Alarm()
signal.signal(signal.SIGALRM, on_alarm)

a, b = socket.socketpair()
fd = a.fileno()
print("send", send(fd), b.recv(10))
a.close()
print("closed", send(fd))
c, d = socket.socketpair()                   # takes fd's number again
print("reused", c.fileno() == fd, send(fd, b"cd"), d.recv(10))
e, f = socket.socketpair()
print("warm", send(fd), d.recv(10))
os.dup2(e.fileno(), fd)                      # fd now names e's socket
print("dup2", send(fd, b"ef"), f.recv(10))
r, w = os.pipe()
os.dup2(r, fd)                               # not a socket any more
print("dup2 pipe", send(fd))
os.close(fd)
g, h = socket.socketpair()
# O_NONBLOCK changed by another process on the shared description
g.setblocking(False)
try:
    g.recv(10)
except BlockingIOError:
    print("nonblock EAGAIN")
pid = os.fork()
if pid == 0:
    fl = fcntl.fcntl(g.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(g.fileno(), fcntl.F_SETFL, fl & ~os.O_NONBLOCK)
    os._exit(0)
os.waitpid(pid, 0)
signal.setitimer(signal.ITIMER_REAL, 0.2)
try:
    print("recv", g.recv(10))                # blocks now: g's object still says nonblocking,
                                             # but the description does not
except Alarm:
    print("blocked after the child's F_SETFL")
except BlockingIOError:
    print("EAGAIN after the child's F_SETFL")
# FIONBIO back on
fcntl.ioctl(g.fileno(), termios.FIONBIO, b"\1\0\0\0")
print("FIONBIO", send(h.fileno(), b"z"))
try:
    g.recv(10); g.recv(10)
except BlockingIOError:
    print("EAGAIN after FIONBIO")
# a child reuses the number for another socket; the parent's fd is unchanged
i, j = socket.socketpair()
fd = i.fileno()
print("parent warm", send(fd, b"p1"), j.recv(10))
rp, wp = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(fd)
    k, l = socket.socketpair()
    print("child reused", k.fileno() == fd, send(fd, b"c"), l.recv(10), flush=True)
    os.write(wp, b"!")
    signal.pause()
os.read(rp, 1)
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
print("parent after kill", send(fd, b"p2"), j.recv(10))
# a thread closes the fd and takes the number for another socket
def swap():
    global m, n
    os.close(fd)
    m, n = socket.socketpair()
t = threading.Thread(target=swap); t.start(); t.join()
print("thread reused", m.fileno() == fd, send(fd, b"t"), n.recv(10))
# close-on-exec: a warm fd, then exec
print("exec warm", send(fd, b"x"), n.recv(10))
sys.stdout.flush()
os.execv(sys.executable, [sys.executable, __file__, str(fd)])
