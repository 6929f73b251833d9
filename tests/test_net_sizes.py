"""Issue 16: the socket data path.  Small sends travel inside the sealed request,
bigger ones through a grant, and NET's readiness notices to the VFS are one-way:
none of it may show.  Differential: tests/c/net_sizes.c natively and under
xinim-run, outputs compared line by line (sizes on both sides of the inline limit,
record boundaries and MSG_TRUNC, EFAULT for buffers not all there with nothing
consumed from a stream, bad fds and lengths, poll/epoll wakes across a fork)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.run import C_DIR, native, xinim_run


@pytest.fixture(scope="module")
def net_sizes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("netsizes")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out / "net_sizes"),
                    str(C_DIR / "net_sizes.c")], check=True, timeout=120)
    return out


def test_sizes_faults_and_wakes_match_linux(net_sizes: Path) -> None:
    nat = native(str(net_sizes / "net_sizes"))
    assert nat.returncode == 0, nat.stderr
    xin = xinim_run("--bind", f"{net_sizes}:/t", "/t/net_sizes")
    assert xin.returncode == 0, xin.stderr
    assert "Traceback" not in xin.stderr
    diff = [f"{a!r} != {b!r}" for a, b in zip(nat.stdout.splitlines(), xin.stdout.splitlines())
            if a != b]
    assert diff == []
    assert len(xin.stdout.splitlines()) == len(nat.stdout.splitlines())
    # the cases ran (sizes each side of the inline limit, and the fault cases)
    assert "stream got 1025 sum-ok: 1" in xin.stdout
    assert "send half-mapped 1000: -1 EFAULT" in xin.stdout
    assert "recv rest: 1000" in xin.stdout


KILLED_MID_CALL = r"""
import os, signal, socket
# a small send parked in NET (the peer's buffer full) and a recv parked on an empty
# socket, each in a child killed with SIGKILL: nothing of either call stays behind
a, b = socket.socketpair()
a.setblocking(False)
queued = 0
try:
    while True:
        queued += a.send(b"f" * 512)
except BlockingIOError:
    pass
a.setblocking(True)
c, d = socket.socketpair()
r, w = os.pipe()
kids = []
for job in ("send", "recv"):
    pid = os.fork()
    if pid == 0:
        os.write(w, b"!")
        if job == "send":
            a.send(b"s" * 100)
        else:
            c.recv(10)
        os._exit(3)
    os.read(r, 1)
    kids.append(pid)
for pid in kids:
    os.kill(pid, signal.SIGKILL)
    print("killed by", os.waitpid(pid, 0)[1] & 0x7f)
a.close()
got = 0
while True:
    chunk = b.recv(1 << 16)
    if not chunk:
        break
    got += len(chunk)
print("stream holds what was queued, then EOF:", got == queued)
d.send(b"after")
print("the dead child's recv took nothing:", c.recv(10))
"""


def test_kill_9_mid_call_leaves_nothing_behind() -> None:
    nat = native("/usr/bin/python3", "-c", KILLED_MID_CALL)
    assert nat.returncode == 0, nat.stderr
    xin = xinim_run("/usr/bin/python3", "-c", KILLED_MID_CALL)
    assert xin.returncode == 0, xin.stderr
    assert xin.stdout == nat.stdout
    assert "took nothing: b'after'" in xin.stdout
