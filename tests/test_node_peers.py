"""Peers on xinim-boot's node socket, written by hand: who may join, what a joined
node may do, and what it may hold (a real xinim-boot process, real sockets)."""
from __future__ import annotations

import array
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from xinim_host.lib import protocol as p
from xinim_host.lib import transport
from xinim_host.lib.ipc import IpcError, Lattice

XINIM_RUN = str(Path(sys.executable).with_name("xinim-run"))
NOBODY = 65534
DEADLINE = 60.0


@dataclass
class Boot:
    proc: subprocess.Popen
    socket: str
    secret: bytes
    pty_fd: int

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))  # type: ignore[union-attr]

    def run(self, *argv: str, **kw) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "XINIM_SOCKET": self.socket, "XINIM_PIN": "0"}
        return subprocess.run([XINIM_RUN, *argv], env=env, capture_output=True, text=True,
                              timeout=60, **kw)


@pytest.fixture
def boot() -> Iterator[Boot]:
    if os.geteuid() != 0:
        pytest.skip("needs root: peers of another uid")
    tmp = tempfile.mkdtemp(prefix="xnp-", dir="/tmp")
    os.chmod(tmp, 0o711)              # so the other user's peer can reach the socket
    sock = os.path.join(tmp, "node.sock")
    bind = os.path.join(tmp, "t")
    os.mkdir(bind)
    subprocess.run(["gcc", "-O1", "-o", os.path.join(bind, "sleeper"), "-x", "c", "-"],
                   input=SLEEPER, text=True, check=True)
    proc = subprocess.Popen([sys.executable, "-m", "xinim_host.cli.boot", "--serial", "pty",
                             "--socket", sock, "--allow-uid", str(NOBODY),
                             "--bind", f"{bind}:/t:ro"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    fd = -1
    try:
        first = proc.stdout.readline().decode()     # type: ignore[union-attr]
        match = re.fullmatch(r"serial0: (/dev/pts/\d+)\n", first)
        assert match, first
        fd = os.open(match.group(1), os.O_RDWR | os.O_NOCTTY)
        deadline = time.monotonic() + DEADLINE
        # the key is written before the socket listens: wait for both
        while not (os.path.exists(transport.secret_path(sock)) and os.path.exists(sock)):
            assert time.monotonic() < deadline, "no node key"
            time.sleep(0.05)
        key = transport.secret_path(sock)
        assert os.stat(key).st_mode & 0o777 == 0o600
        with open(key, "rb") as f:
            secret = f.read()
        os.chmod(sock, 0o666)         # the host lets the other user connect; the boot decides
        yield Boot(proc, sock, secret, fd)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if fd >= 0:
            os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)
    assert b"Traceback" not in err, err.decode(errors="replace")


# a 0.2 s interval timer must interrupt a 5 s nanosleep (EINTR), as on Linux
SLEEPER = r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
static void on_alarm(int sig) { (void)sig; }
int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {0, 200000}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec req = {5, 0}, rem = {0, 0};
    int r = nanosleep(&req, &rem);
    printf("%d %s %ld\n", r, r ? strerror(errno) : "ok", (long)rem.tv_sec);
    return 0;
}
"""


def connect_as(uid: int, path: str) -> socket.socket:
    """A socket connected to ``path`` by a process of host user ``uid`` (SO_PEERCRED
    records who connected): a forked child switches user, connects and hands the
    socket back over a socketpair."""
    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:    # the child: no Python cleanup, no trio
        code = 1
        try:
            here.close()
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(path)
            socket.send_fds(there, [b"s"], [conn.fileno()])
            code = 0
        finally:
            os._exit(code)
    there.close()
    try:
        _, fds, _, _ = socket.recv_fds(here, 1, 1)
        assert fds, "the child could not connect"
        return socket.socket(fileno=fds[0])
    finally:
        here.close()
        os.waitpid(pid, 0)


class RawPeer:
    """A node-protocol client by hand: the handshake, then sealed requests from the
    pids it picks (the boot decides which it may use)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lattice = Lattice(0)
        self.stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self.route = transport.SocketRoute(self.lattice, self.stream)
        self.node = self.boot_node = 0
        self.kernel = 0

    async def join(self, secret: bytes, nursery: trio.Nursery) -> None:
        with trio.fail_after(DEADLINE):
            self.boot_node, self.node = await self.route.answer(secret)
        self.lattice.node_id = self.node
        self.lattice.routes[self.boot_node] = self.route
        nursery.start_soon(self.route.run)
        self.kernel = p.node_kernel_pid(self.node)
        self.lattice.register(self.kernel)

    async def ask(self, dst: int, body: p.Payload, src: int | None = None) -> p.Payload:
        src = self.kernel if src is None else src
        if (src, dst) not in self.lattice.send_channels:
            await self.lattice.connect(src, dst, self.boot_node)
        with trio.fail_after(DEADLINE):
            return (await self.lattice.sendrec(src, dst, body)).body

    async def fork(self, parent: int = p.INIT_PID) -> int:
        reply = await self.ask(p.PM_PID, p.ProcFork(parent_pid=parent, child_host_pid=0))
        assert not reply.error, os.strerror(reply.error)
        return reply.result

    async def closed(self) -> bool:
        """Wait until the boot ended our link."""
        with trio.fail_after(DEADLINE):
            while self.boot_node in self.lattice.routes:
                await trio.sleep(0.02)
        return True


def _open(pid: int, path: bytes, flags: int = os.O_RDONLY) -> p.VfsOpen:
    return p.VfsOpen(caller=pid, dirfd=-100, flags=flags, mode=0o644, path=path)


async def _joined(boot: Boot, nursery: trio.Nursery, uid: int = 0) -> RawPeer:
    peer = RawPeer(connect_as(uid, boot.socket) if uid else _connect(boot.socket))
    await peer.join(boot.secret, nursery)
    return peer


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


# --- who may join ------------------------------------------------------------------------


async def test_only_the_booting_user_or_an_allowed_one_with_the_key_joins(
        boot: Boot, nursery: trio.Nursery) -> None:
    wrong_key = RawPeer(_connect(boot.socket))
    with pytest.raises((IpcError, trio.BrokenResourceError, OSError)):
        await wrong_key.join(bytes(32), nursery)
    stranger = RawPeer(connect_as(NOBODY - 1, boot.socket))   # not allowed, right key
    with pytest.raises((IpcError, trio.BrokenResourceError, OSError)):
        await stranger.join(boot.secret, nursery)
    allowed = await _joined(boot, nursery, NOBODY)
    root = await _joined(boot, nursery)
    # the boot chose the node ids, each its own
    assert len({allowed.node, root.node, allowed.boot_node}) == 3
    assert allowed.boot_node == root.boot_node


# --- what a joined node may do ---------------------------------------------------------


async def test_a_peer_reads_only_what_its_host_user_may(boot: Boot,
                                                        nursery: trio.Nursery) -> None:
    made = boot.run("/bin/sh", "-c", "echo top secret > /root/secret; chmod 600 /root/secret")
    assert made.returncode == 0, made.stderr
    root = await _joined(boot, nursery)
    mine = await root.fork()
    assert not (await root.ask(p.VFS_PID, _open(mine, b"/root/secret"))).error  # root may

    peer = await _joined(boot, nursery, NOBODY)
    child = await peer.fork()
    ids = await peer.ask(p.PM_PID, p.ProcGetresuid(caller=child))
    assert (ids.real, ids.effective, ids.saved) == (NOBODY, NOBODY, NOBODY)   # not root
    for caller in (child, peer.kernel):
        reply = await peer.ask(p.VFS_PID, _open(caller, b"/root/secret"))
        assert reply.error == errno.EACCES
    assert not (await peer.ask(p.VFS_PID, _open(child, b"/etc/hostname"))).error
    # it may not speak for init, the boot's kernel or anyone it did not make
    for caller in (p.INIT_PID, p.KERNEL_PID, mine):
        reply = await peer.ask(p.VFS_PID, _open(caller, b"/root/secret"))
        assert reply.error == errno.EPERM
    assert (await peer.ask(p.PM_PID, p.ProcSetuid(caller=child, uid=0))).error == errno.EPERM


async def test_a_peer_cannot_claim_another_nodes_process(boot: Boot,
                                                          nursery: trio.Nursery) -> None:
    env = {**os.environ, "XINIM_SOCKET": boot.socket, "XINIM_PIN": "0"}
    victim = subprocess.Popen([XINIM_RUN, "/bin/sh", "-c",
                               "exec 3>/tmp/victim; echo $$; exec sleep 60"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = await trio.to_thread.run_sync(victim.stdout.readline)   # type: ignore[union-attr]
        vpid = int(line)
        peer = await _joined(boot, nursery)          # root, even: still not its process
        write = p.VfsWrite(caller=vpid, fd=3, data=b"pwned\n")
        assert (await peer.ask(p.VFS_PID, write)).error == errno.EPERM
        fork = p.ProcFork(parent_pid=vpid, child_host_pid=0)
        assert (await peer.ask(p.PM_PID, fork)).error == errno.EPERM
        stdio = p.VfsNodeStdio(pid=vpid, node=peer.node)
        assert (await peer.ask(p.VFS_PID, stdio)).error == errno.EPERM
        # nor take its pid, another node's kernel pid or the boot's kernel as an endpoint
        for pid in (vpid, p.node_kernel_pid(peer.node + 1), p.KERNEL_PID):
            peer.lattice.register(pid)
            with pytest.raises(IpcError) as info:
                await peer.ask(p.VFS_PID, write, src=pid)
            assert info.value.errno == errno.EPERM
        check = boot.run("/bin/cat", "/tmp/victim")
        assert (check.returncode, check.stdout) == (0, "")
    finally:
        victim.kill()
        victim.wait(timeout=30)


# --- bounds ------------------------------------------------------------------------------


def _send_fds(peer: RawPeer, count: int) -> None:
    """``count`` fds with a record of an unknown kind: they wait for a STDIO record."""
    r, w = os.pipe()
    try:
        peer.sock.sendmsg([transport.RECORD.pack(1, 99)],
                          [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                            array.array("i", [r] * count).tobytes())])
    finally:
        os.close(r)
        os.close(w)


async def _over_in_flight(peer: RawPeer) -> None:
    child = await peer.fork()
    pipe = await peer.ask(p.VFS_PID, p.VfsPipe(caller=child, flags=0))
    for _ in range(transport.MAX_IN_FLIGHT + 8):   # reads of an empty pipe: all parked
        try:
            peer.lattice.call(peer.kernel, p.VFS_PID,
                              p.VfsRead(caller=child, fd=pipe.read_fd, count=1))
        except IpcError:
            break
        await trio.sleep(0)


@pytest.mark.parametrize("how", ["fds", "record", "in_flight"])
async def test_a_peer_over_its_bound_is_cut_off(boot: Boot, nursery: trio.Nursery,
                                                how: str) -> None:
    peer = await _joined(boot, nursery, NOBODY)
    if how == "fds":
        for _ in range(2):   # fds that wait for a STDIO record that never comes
            _send_fds(peer, 3)
    elif how == "record":
        peer.sock.send(transport.RECORD.pack(transport.MAX_RECORD + 1, transport.FRAME))
    else:
        await _over_in_flight(peer)
    assert await peer.closed()
    again = await _joined(boot, nursery, NOBODY)        # the boot still serves
    assert await again.fork() > 0


async def test_the_boot_returns_to_its_footprint_after_100_peers(
        boot: Boot, nursery: trio.Nursery) -> None:
    async def one(i: int) -> None:
        async with trio.open_nursery() as own:
            peer = await _joined(boot, own, NOBODY if i % 2 else 0)
            await peer.fork()
            # a partial record of the largest size, and fds without their STDIO record
            peer.sock.send(transport.RECORD.pack(transport.MAX_RECORD, transport.FRAME)
                           + bytes(transport.MAX_RECORD // 2))
            _send_fds(peer, 3)
            if i % 3 == 0:
                _send_fds(peer, 3)       # over the bound: the boot cuts it off
                await peer.closed()
            own.cancel_scope.cancel()    # else: it just goes away, holding all that

    async def batch(start: int, n: int) -> None:
        async with trio.open_nursery() as many:
            for i in range(start, start + n):
                many.start_soon(one, i)

    async def settled(limit: int) -> int:
        with trio.fail_after(DEADLINE):
            while boot.fds() > limit:
                await trio.sleep(0.05)
        return boot.fds()

    await batch(0, 10)                   # warm up: first-time allocations
    await trio.sleep(0.5)
    fds0, rss0 = boot.fds(), boot.rss_kib()
    for start in range(0, 100, 25):
        await batch(start, 25)
    fds1 = await settled(fds0 + 1)
    await trio.sleep(0.5)
    rss1 = boot.rss_kib()
    print(f"xinim-boot after 100 peers: fds {fds0} -> {fds1}, VmRSS {rss0} -> {rss1} kB")
    assert fds1 <= fds0 + 1
    assert rss1 - rss0 < 12 * 1024      # KiB; 100 peers held ~10 MB of records at the peak
    # and the processes those nodes made are gone
    root = await _joined(boot, nursery)
    listing = await root.ask(p.PM_PID, p.ProcList(caller=root.kernel, start=0))
    entries = p.decode_proc_list(listing.data)
    assert [e.pid for e in entries if e.pid >= p.FIRST_USER_PID] == []


# --- signals in joined programs -----------------------------------------------------------


def test_an_interval_timer_interrupts_a_joined_nanosleep(boot: Boot) -> None:
    native = subprocess.run([os.path.join(os.path.dirname(boot.socket), "t", "sleeper")],
                            capture_output=True, text=True, timeout=30)
    started = time.monotonic()
    joined = boot.run("/t/sleeper")
    took = time.monotonic() - started
    assert joined.returncode == 0, joined.stderr
    assert joined.stdout.split()[:2] == native.stdout.split()[:2] == ["-1", "Interrupted"]
    assert joined.stdout.split()[-1] == "4"        # the time left, written back
    assert took < 4.5, took                         # it did not sleep the 5 s out
