"""Direct maps of host-mount files (kernel/calls/memory.py): consecutive maps of one
file share one host fd injected into the program; maps of other files, through
other fds, after a close, in a forked child and after an exec still see exactly
the bytes of the file they name -- compared with the same program natively."""
from __future__ import annotations

from support.run import native, xinim_run

SCRIPT = r"""
import mmap, os, sys
def show(path, off=0, n=4096, flags=mmap.MAP_PRIVATE):
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    m = mmap.mmap(fd, min(n, size - off), flags=flags, prot=mmap.PROT_READ, offset=off)
    os.close(fd)
    data = m[:64]
    m.close()
    return data
files = ["/etc/passwd", "/etc/group", "/usr/bin/env"]
out = []
for rnd in range(2):
    for f in files:                       # alternating files: the held fd changes
        out.append(show(f))
        out.append(show(f, 4096 if os.path.getsize(f) > 8192 else 0))
    keep = os.open("/etc/passwd", os.O_RDONLY)   # two fds on one file, maps through both
    other = os.open("/etc/passwd", os.O_RDONLY)
    a = mmap.mmap(keep, 0, prot=mmap.PROT_READ); b = mmap.mmap(other, 0, prot=mmap.PROT_READ)
    out.append(a[:32] + b[-32:]); a.close(); b.close(); os.close(keep); os.close(other)
pid = os.fork()
if pid == 0:                              # the child inherits the held fd: still right
    sys.stdout.write(repr([show(f) for f in reversed(files)]) + "\n"); sys.stdout.flush()
    os._exit(0)
os.waitpid(pid, 0)
sys.stdout.write(repr(out) + "\n")
"""


def test_direct_maps_see_the_files_they_name() -> None:
    want = native("/usr/bin/python3", "-c", SCRIPT)
    got = xinim_run("/usr/bin/python3", "-c", SCRIPT)
    assert want.returncode == 0, want.stderr
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr


def test_an_exec_after_direct_maps_starts_clean() -> None:
    # sh maps libc directly, then execs python3, which maps its own libraries
    # (the held fd was close-on-exec) and the files of the script
    want = native("/bin/sh", "-c", f"exec /usr/bin/python3 -c '{SCRIPT}'")
    got = xinim_run("/bin/sh", "-c", f"exec /usr/bin/python3 -c '{SCRIPT}'")
    assert want.returncode == 0, want.stderr
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr


FILLED = r"""
import mmap, os, sys
d = sys.argv[1]
data = bytes(range(256)) * 4096 + b"tail"            # 1 MiB and a bit: a partial last page
with open(d + "/f", "wb") as f:
    f.write(data)
fd = os.open(d + "/f", os.O_RDWR)
out = []
for off, n in ((0, 0), (4096, 8192), (1 << 20, 0)):
    m = mmap.mmap(fd, n, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ, offset=off)
    out.append((len(m), m[:8], m[-8:], sum(m[::4093])))
    m.close()
s = mmap.mmap(fd, 0, flags=mmap.MAP_SHARED)           # shared: written back on close
s[:4] = b"XYZW"; s.close(); os.close(fd)
out.append(open(d + "/f", "rb").read(6))
print(out)
"""


def test_maps_of_ramfs_files_are_filled_with_their_bytes(tmp_path) -> None:
    """Not a host file: the mapping is filled through the VFS (one grant read)."""
    want = native("/usr/bin/python3", "-c", FILLED, str(tmp_path))
    got = xinim_run("/usr/bin/python3", "-c", FILLED, "/tmp")
    assert want.returncode == 0, want.stderr
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr
