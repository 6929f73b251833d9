"""Issue 15: RLIMIT_FSIZE and RLIMIT_NOFILE as the VFS enforces them, F_CREATED_QUERY,
O_NOATIME; the same output natively and under xinim-run.  Usage: limits.py DIR."""
import errno
import fcntl
import os
import resource
import signal
import sys

d = sys.argv[1]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.RLIM_INFINITY))
fd = os.open(os.path.join(d, "f"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
print("write 200 under 100:", os.write(fd, b"x" * 200))
try:
    os.write(fd, b"y")
except OSError as e:
    print("write at the limit:", errno.errorcode[e.errno])
try:
    os.ftruncate(fd, 200)
except OSError as e:
    print("ftruncate past it:", errno.errorcode[e.errno])
os.close(fd)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
fds = []
try:
    while True:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    print("fds stop at", max(fds), errno.errorcode[e.errno])
for f in fds:
    os.close(f)
F_CREATED_QUERY = 1028
g = os.open(os.path.join(d, "new"), os.O_RDONLY | os.O_CREAT, 0o600)
h = os.open(os.path.join(d, "new"), os.O_RDONLY)
print("created query:", fcntl.fcntl(g, F_CREATED_QUERY), fcntl.fcntl(h, F_CREATED_QUERY))
