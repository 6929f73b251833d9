"""Direct maps of host-mount files (kernel/calls/memory.py): consecutive maps of one
file share one host fd injected into the program; maps of other files, through
other fds, after a close, in a forked child and after an exec still see exactly
the bytes of the file they name -- compared with the same program natively."""
from __future__ import annotations

from pathlib import Path

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
    # sh maps libc directly, then execs python3, which maps libc again through
    # the fd sh left it, its own libraries and the files of the script
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


INHERITED = r"""
import mmap, os, sys
d = sys.argv[1]
def show(path):
    fd = os.open(path, os.O_RDONLY)
    m = mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    os.close(fd)
    data = m[:24] + m[-24:]
    m.close()
    return data
if len(sys.argv) > 2:                     # the exec'd child: the same files, then the new a
    print(repr([show(d + "/f%d" % i) for i in range(12)] + [show(d + "/a")]))
    sys.exit(0)
for i in range(12):                       # more files than a process keeps open for maps
    with open(d + "/f%d" % i, "wb") as f:
        f.write(bytes([65 + i]) * (5000 + i))
with open(d + "/a", "wb") as f:
    f.write(b"old" * 2000)
print(repr([show(d + "/f%d" % i) for i in range(12)] + [show(d + "/a")]), flush=True)
with open(d + "/a.new", "wb") as f:       # the path now names another file (new inode)
    f.write(b"new" * 2000)
os.rename(d + "/a.new", d + "/a")
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-c", SRC, d, "child"])
os.waitpid(pid, 0)
"""


def test_children_map_through_inherited_fds_and_see_replaced_files(tmp_path: Path) -> None:
    """A tracee keeps the host files of its direct maps open across fork and exec;
    an exec'd child maps through them -- only the very file a fd names: one
    replaced under the same path is opened afresh (its new bytes), and past the
    number kept per process the rest are opened and closed as they come."""
    script = "SRC = " + repr(INHERITED) + "\n" + INHERITED
    want = native("/usr/bin/python3", "-c", script, str(tmp_path / "n"),
                  cwd=str(_mkdir(tmp_path / "n")))
    got = xinim_run("--bind", f"{_mkdir(tmp_path / 'x')}:/t:rw", "/usr/bin/python3", "-c",
                    script, "/t")
    assert want.returncode == 0, want.stderr
    lines = want.stdout.splitlines()
    assert len(lines) == 2 and lines[0] != lines[1]        # the child saw the new /t/a
    assert (got.returncode, got.stdout) == (0, want.stdout), got.stderr


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path
