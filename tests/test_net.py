"""Issue 13: the NET server.  Real programs over real sockets, loopback only;
differential where Linux gives the answer (same program natively and under
xinim-run, outputs compared)."""
from __future__ import annotations

import http.server
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from support.run import C_DIR, XINIM_RUN, native, run_env, xinim_run

PY_DIR = Path(__file__).resolve().parent / "py"
PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def net_errno(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("netc")
    subprocess.run(["gcc", "-O2", "-Wall", "-Wno-stringop-overflow", "-o", str(out / "net_errno"),
                    str(C_DIR / "net_errno.c")], check=True, timeout=120)
    return out


def _differ_only_where_unsupported(nat: str, xin: str, stderr: str) -> list[str]:
    """Lines that differ; eventfd's line is excused while XINIM has no eventfd yet."""
    diff = [f"{a!r} != {b!r}" for a, b in zip(nat.splitlines(), xin.splitlines()) if a != b]
    if "eventfd2" in stderr and "ENOSYS" in stderr:
        diff = [d for d in diff if not d.startswith("'eventfd passed")]
    if len(nat.splitlines()) != len(xin.splitlines()):
        diff.append(f"{len(nat.splitlines())} lines != {len(xin.splitlines())} lines")
    return diff


def test_errno_differential(net_errno: Path, tmp_path: Path) -> None:
    """Every bad-input case and edge case answers as Linux: EAFNOSUPPORT,
    EPROTONOSUPPORT, ENOTSOCK, EADDRINUSE, ECONNREFUSED, EISCONN, ENOTCONN, EFAULT,
    EINVAL, EPIPE (+SIGPIPE unless MSG_NOSIGNAL), ECONNRESET; SCM_RIGHTS of a pipe
    end, a socket and an eventfd across fork; loopback TCP and UDP."""
    nat = native(str(net_errno / "net_errno"), str(tmp_path))
    assert nat.returncode == 0, nat.stderr
    xin = xinim_run("--bind", f"{net_errno}:/t", "/t/net_errno", "/tmp")
    assert xin.returncode == 0, xin.stderr
    assert "Traceback" not in xin.stderr
    assert _differ_only_where_unsupported(nat.stdout, xin.stdout, xin.stderr) == []
    assert "accept4 cloexec: 1" in xin.stdout and "child killed by: 13" in xin.stdout


def test_python_acceptance(tmp_path: Path) -> None:
    """send_fds across fork, socketpair, http.server + urllib in one program."""
    work = tmp_path / "native"
    work.mkdir()
    nat = native(PYTHON, str(PY_DIR / "net_acceptance.py"))
    assert nat.returncode == 0, nat.stderr
    xin = xinim_run("--bind", f"{PY_DIR}:/t", PYTHON, "/t/net_acceptance.py")
    assert xin.returncode == 0, xin.stderr
    assert xin.stdout == nat.stdout
    assert "http through the passed fd" in xin.stdout


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_curl_inside_fetches_from_host_server(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_bytes(b"from the host\n" * 1000)
    handler = lambda *a, **kw: _Quiet(*a, directory=str(tmp_path), **kw)   # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        port = httpd.server_address[1]
        res = xinim_run("/usr/bin/curl", "-sS", f"http://127.0.0.1:{port}/f.txt")
        assert res.returncode == 0, res.stderr
        assert res.stdout == "from the host\n" * 1000
    finally:
        httpd.shutdown()


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_host_curl_fetches_from_server_inside(tmp_path: Path) -> None:
    (tmp_path / "g.txt").write_text("served from inside XINIM\n")
    port = _free_port()
    proc = subprocess.Popen([XINIM_RUN, "--bind", f"{tmp_path}:/srv", PYTHON, "-m",
                             "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", "/srv"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=run_env(), cwd="/")
    try:
        out = None
        for _ in range(300):             # until the server inside listens (or it died)
            if proc.poll() is not None:
                break
            got = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/g.txt"],
                                 capture_output=True, text=True, timeout=30)
            if got.returncode == 0:
                out = got.stdout
                break
            time.sleep(0.1)
        assert out == "served from inside XINIM\n", proc.stderr.read() if proc.poll() else ""
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_ls_and_tar_quiet_on_stderr() -> None:
    """ls -l's and tar's user lookups try the nscd socket: no ENOSYS lines any more."""
    res = xinim_run("/bin/ls", "-l", "/")
    assert res.returncode == 0 and res.stderr == ""
    res = xinim_run("/bin/sh", "-c", "cd /etc && tar cf /tmp/x.tar hostname passwd && tar tf /tmp/x.tar")
    assert res.returncode == 0 and res.stderr == ""
    assert res.stdout.split() == ["hostname", "passwd"]


PROC_NET = r"""
import os, socket
u = socket.socket(socket.AF_UNIX); u.bind("/tmp/pn.sock"); u.listen(1)
a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); a.bind("\0xinim-proc-net")
t = socket.socket(); t.bind(("127.0.0.1", 0)); t.listen(1)
port = t.getsockname()[1]
unix = open("/proc/net/unix").read().splitlines()
tcp = open("/proc/net/tcp").read().splitlines()
print(unix[0])
print([l.split()[-1] for l in unix[1:]])
print([l.split()[1:4] for l in tcp[1:]] == [["0100007F:%04X" % port, "00000000:0000", "0A"]])
print(os.readlink("/proc/self/fd/%d" % u.fileno()) == "socket:[%d]" % os.fstat(u.fileno()).st_ino)
print(oct(os.stat("/tmp/pn.sock").st_mode >> 12))
"""


def test_proc_net_lists_the_sockets() -> None:
    res = xinim_run(PYTHON, "-c", PROC_NET)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "Num       RefCount Protocol Flags    Type St Inode Path",
        "['/tmp/pn.sock', '@xinim-proc-net']", "True", "True", "0o14"]


BLOCKED_RECV = r"""
import signal, socket
class Alarm(Exception): pass
def on_alarm(sig, frame): raise Alarm()
signal.signal(signal.SIGALRM, on_alarm)
a, b = socket.socketpair()
signal.setitimer(signal.ITIMER_REAL, 0.2)
try:
    a.recv(10)
except Alarm:
    print("interrupted")
b.send(b"after")
print(a.recv(10))
"""


def test_blocked_recv_is_interrupted_by_a_signal() -> None:
    res = xinim_run(PYTHON, "-c", BLOCKED_RECV)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "interrupted\nb'after'\n"


def test_peer_sees_eof_when_a_program_dies() -> None:
    """A child killed with SIGKILL while holding a connection: the parent reads EOF."""
    prog = r"""
import os, signal, socket
a, b = socket.socketpair()
pid = os.fork()
if pid == 0:
    a.close(); b.send(b"hi"); signal.pause()
b.close()
print(a.recv(10))
os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
print(a.recv(10))
"""
    res = xinim_run(PYTHON, "-c", prog)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "b'hi'\nb''\n"


MORE_CASES = r"""
import os, signal, socket, struct, time
# read()/write() on socket fds: the VFS's proxy, the data through an indirect grant
a, b = socket.socketpair()
pid = os.fork()
if pid == 0:
    a.close(); n = 0
    while True:
        d = os.read(b.fileno(), 1 << 20)
        if not d: break
        n += len(d)
    os.write(b.fileno(), str(n).encode()); os._exit(0)
b.close()
view = memoryview(b"z" * (3 << 20))
while view:
    view = view[os.write(a.fileno(), view):]
a.shutdown(socket.SHUT_WR)
print("read/write", os.read(a.fileno(), 100)); os.waitpid(pid, 0)
# a read() parked in NET through the VFS is interrupted by a signal
class Alarm(Exception): pass
def on_alarm(sig, frame): raise Alarm()
signal.signal(signal.SIGALRM, on_alarm)
a, b = socket.socketpair()
signal.setitimer(signal.ITIMER_REAL, 0.2)
try:
    os.read(a.fileno(), 10)
except Alarm:
    print("read interrupted")
# SO_RCVTIMEO ends a blocked recv with EAGAIN
a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("qq", 0, 100000))
try:
    a.recv(10)
except BlockingIOError:
    print("timed out")
# big datagrams keep their boundaries; MSG_TRUNC says how long
d1, d2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
d1.send(b"a" * 70000); d1.send(b"b" * 10)
print("dgram", len(d2.recv(100000)), d2.recv(100000))
d1.send(b"c" * 9000)
print("trunc", d2.recv_into(bytearray(10), 10, socket.MSG_TRUNC))
# SEQPACKET: records over a connection; EOF when the peer goes
srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); srv.bind("\0xinim-seq"); srv.listen(1)
c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); c.connect("\0xinim-seq")
s, _ = srv.accept()
c.send(b"one"); c.send(b"two"); c.close()
print("seqpacket", s.recv(100), s.recv(100), s.recv(100))
# SCM_CREDENTIALS with SO_PASSCRED: XINIM pid and ids
x, y = socket.socketpair()
y.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
x.send(b"c")
msg, anc, flags, addr = y.recvmsg(10, socket.CMSG_SPACE(12))
pid_, uid_, gid_ = struct.unpack("iII", anc[0][2])
print("creds", anc[0][:2], pid_ == os.getpid(), uid_ == os.geteuid())
# poll/select on a socket: the readiness NET pushes
import select
p, q = socket.socketpair()
print("select empty", select.select([p], [], [], 0)[0] == [])
q.send(b"!")
print("select ready", select.select([p], [], [], 5)[0] == [p])
# sendfile to a socket (the whole file, position moved) and to a file (offset given)
with open("/tmp/sf.bin", "wb") as f:
    f.write(bytes(range(256)) * 9000)
a, b = socket.socketpair()
pid = os.fork()
if pid == 0:
    a.close(); got = bytearray()
    while True:
        d = b.recv(1 << 20)
        if not d: break
        got += d
    os.write(b.fileno(), b"ok" if got == bytes(range(256)) * 9000 else b"bad"); os._exit(0)
b.close()
with open("/tmp/sf.bin", "rb") as f:
    print("sendfile", a.sendfile(f), f.tell())
a.shutdown(socket.SHUT_WR); print(a.recv(10)); os.waitpid(pid, 0)
with open("/tmp/sf.bin", "rb") as f, open("/tmp/sf.out", "wb") as o:
    print("sendfile file", os.sendfile(o.fileno(), f.fileno(), 100, 1000), f.tell())
print(open("/tmp/sf.out", "rb").read() == (bytes(range(256)) * 9)[100:1100])
os.unlink("/tmp/sf.bin"); os.unlink("/tmp/sf.out")
"""


def test_more_socket_cases(tmp_path: Path) -> None:
    nat = native(PYTHON, "-c", MORE_CASES)
    assert nat.returncode == 0, nat.stderr
    xin = xinim_run(PYTHON, "-c", MORE_CASES)
    assert xin.returncode == 0, xin.stderr
    assert xin.stdout == nat.stdout


async def test_net_crashing_takes_no_other_server_down(console: object) -> None:
    """NET's loop dies (an exception in its nursery): logged, its endpoint closed;
    socket calls answer an errno at once, and VFS, PM and MM go on serving."""
    import dataclasses

    import trio

    from xinim_host.kernel.calls.base import SyscallContext
    from xinim_host.lib import protocol as p
    from xinim_host.lib.syscalls import Sys
    from xinim_host.lib.usermem import FlatMemory
    from xinim_host.system.boot import BootConfig, booted

    async def boom() -> None:
        raise RuntimeError("NET blows up (test)")

    with trio.fail_after(30):
        async with booted(BootConfig(console=console, quiet=True)) as system:
            mem = FlatMemory(4096, base=0x10000)
            init = SyscallContext(pid=p.INIT_PID, args=(0,) * 6, mem=mem)
            sock = dataclasses.replace(init, args=(1, 1, 0, 0, 0, 0))
            fd = await system.kernel.syscall(Sys.SOCKET, sock)
            assert fd >= 0
            system.net.nursery.start_soon(boom)
            while not system.lattice.endpoints.get(p.NET_PID) or \
                    not system.lattice.endpoints[p.NET_PID].closed:
                if p.NET_PID not in system.lattice.endpoints:
                    break
                await trio.sleep(0)
            assert await system.kernel.syscall(Sys.SOCKET, sock) < 0
            assert await system.kernel.syscall(Sys.GETPID, init) == p.INIT_PID
            mem.write(0x10000, b"/\0")
            opened = dataclasses.replace(init, args=(0x10000, 0o200000, 0, 0, 0, 0))
            dirfd = await system.kernel.syscall(Sys.OPEN, opened)
            assert dirfd >= 0
            assert await system.kernel.syscall(Sys.CLOSE, dataclasses.replace(
                init, args=(dirfd, 0, 0, 0, 0, 0))) == 0
            # the socket's fd closes without NET
            assert await system.kernel.syscall(Sys.CLOSE, dataclasses.replace(
                init, args=(fd, 0, 0, 0, 0, 0))) == 0


def test_ipv6_and_options() -> None:
    nat = native(PYTHON, str(PY_DIR / "net_v6_options.py"))
    assert nat.returncode == 0, nat.stderr
    xin = xinim_run("--bind", f"{PY_DIR}:/t", PYTHON, "/t/net_v6_options.py")
    assert xin.returncode == 0, xin.stderr
    assert xin.stdout == nat.stdout


def test_poll_states_as_linux() -> None:
    nat = native(PYTHON, str(PY_DIR / "net_poll_states.py"))
    assert nat.returncode == 0, nat.stderr
    xin = xinim_run("--bind", f"{PY_DIR}:/t", PYTHON, "/t/net_poll_states.py")
    assert xin.returncode == 0, xin.stderr
    assert xin.stdout == nat.stdout


def test_socket_fd_refs_follow_the_fd_table() -> None:
    """sendto/recvfrom/sendmsg use the kernel's copy of the VFS's fd -> socket
    answer (Kernel.socks): every way an fd number can change meaning in between."""
    nat = native(PYTHON, str(PY_DIR / "net_sock_cache.py"))
    assert nat.returncode == 0, nat.stderr
    assert "exec: reused True" in nat.stdout
    xin = xinim_run("--bind", f"{PY_DIR}:/t", PYTHON, "/t/net_sock_cache.py")
    assert xin.returncode == 0, xin.stderr
    assert xin.stdout == nat.stdout
