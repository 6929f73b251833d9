"""Lattice IPC benchmark: sendrec round trips per second.

    .venv/bin/python bench/ipc.py [--seconds 0.4] [--repeat 5] [--cpu N] [--no-remote]
                                  [--startup-runs 10]

Prints, in one run, for 64-byte and 4096-byte payloads (a ``VfsIoctl`` request whose
data an echo server sends back in its reply, so the payload crosses both ways):

* in-process, direct dispatch: ``Lattice.call`` from the kernel (PID 0) to a server
  that handles it inline -- the path a syscall takes (``call`` is synchronous and
  timed as such); also with the payload in the request only (a ``VfsWrite`` whose
  reply is its byte count);
* in-process, queued: the server's endpoint has no direct handler, so every request
  goes through its receive loop (``await sendrec``; two trio task switches);
* across processes: a second OS process runs the node (``serve_socket``); this one
  dials in and ``sendrec``s over the Unix socket, one at a time and 16 at once;
* the dispatcher's whole path for one syscall (``Kernel.start(close)``).

Each figure is for encrypted channels (XChaCha20-Poly1305, the default) and for
plaintext ones (``connect_local(..., encrypted=False)``), with their ratio.

Then the channel key establishment (``lib/chankey.py``), hybrid ML-KEM-768 +
X25519 against X25519 alone (the same handshake, KDF and key confirmation with
the ML-KEM half left out -- ``x25519_only()``, a stand-in that exists here only):
channel set-up time in us (``connect_local``, and ``connect`` across processes),
start-up of ``xinim-run /bin/true`` (min and median of ``--startup-runs``,
alternating), and the steady-state round trips/s on channels made either way.  Each is
the best of ``--repeat`` runs of ``--seconds`` (the machines are shared: the best run
is the least disturbed).  In-process figures use one thread (one core).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Awaitable, Callable

import trio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from xinim_host.lib import ipc, protocol as p  # noqa: E402
from xinim_host.lib.ipc import Lattice  # noqa: E402
from xinim_host.lib.server import Server  # noqa: E402

SIZES = (64, 4096)
CONCURRENCY = 16
CLIENT_NODE, SERVER_NODE = 7, 1   # (the boot assigns the client its node id and pid)


class Echo(Server):
    pid = p.VFS_PID
    reply_type = p.VFS_REPLY


Echo.handlers = {
    p.VFS_IOCTL: lambda srv, req: p.VfsIoctlReply(result=len(req.body.data), data=req.body.data),
    p.VFS_WRITE: lambda srv, req: len(req.body.data),
    p.VFS_CLOSE: lambda srv, req: 0,
}


def body_of(size: int) -> p.Payload:
    return p.VfsIoctl(caller=1, fd=0, request=0, arg=0, data=os.urandom(size))


def x25519_only() -> None:
    """Make channel handshakes X25519-only in this process (for comparison): the
    offer is the initiator's X25519 key, the answer the responder's and the
    confirmation tag; the KDF gets zeros where the ML-KEM secret would be.  ML-KEM
    (and ``cryptography``) is then never loaded."""
    from xinim_host.lib import chankey as ck

    class Initiator:
        def __init__(self, ends: ck.Ends) -> None:
            self.ends = ends
            self.offer, self._secret = ck._x25519_keypair()

        def finish(self, answer: bytes) -> ck.ChannelKeys:
            x_r, tag = answer[:32], answer[32:]
            ikm = bytearray(64)
            ck._x25519(self._secret, x_r, ikm, 32)
            ck.wipe(self._secret)
            keys, expected = ck.combine(self.ends, self.offer, x_r, b"", ikm)
            if tag != expected:
                raise ck.HandshakeRefused("key confirmation failed")
            return keys

    def respond(ends: ck.Ends, offer: bytes) -> tuple[ck.ChannelKeys, bytes]:
        x_r, secret = ck._x25519_keypair()
        ikm = bytearray(64)
        ck._x25519(secret, offer, ikm, 32)
        ck.wipe(secret)
        keys, tag = ck.combine(ends, offer, x_r, b"", ikm)
        return keys, x_r + tag

    ck.Initiator, ck.respond = Initiator, respond   # type: ignore[misc, assignment]


def make_plaintext(lattice: Lattice, a: int, b: int) -> None:
    """Turn an existing channel a <-> b (either side's halves) into a plaintext one."""
    for key in list(lattice.send_channels):
        if key in ((a, b), (b, a)):
            old = lattice.send_channels[key]
            lattice.send_channels[key] = ipc.SendChannel(old.node, None, old.seq)
    for key in list(lattice.recv_channels):
        if key[1:] in ((a, b), (b, a)):
            old = lattice.recv_channels[key]
            lattice.recv_channels[key] = ipc.RecvChannel(None, old.last_seq)


# --- timing --------------------------------------------------------------------------


def best_rate_sync(step: Callable[[], Any], seconds: float, repeat: int) -> float:
    """Round trips per second of ``step`` (a batch of 100 round trips)."""
    best = 0.0
    for _ in range(repeat):
        done, start = 0, time.perf_counter()
        deadline = start + seconds
        while True:
            step()
            done += 100
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, done / (now - start))
    return best


async def best_rate_async(step: Callable[[], Awaitable[int]], seconds: float,
                          repeat: int) -> float:
    """Round trips per second of ``await step()`` (returns how many it did)."""
    best = 0.0
    for _ in range(repeat):
        done, start = 0, time.perf_counter()
        deadline = start + seconds
        while True:
            done += await step()
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, done / (now - start))
    return best


# --- in-process ----------------------------------------------------------------------


def in_process_direct(size: int, encrypted: bool, seconds: float, repeat: int,
                      echo: bool = True) -> float:
    """``Lattice.call`` from the kernel to a server that handles it inline.  ``call``
    is synchronous (the interceptor calls it from its loop), so it is timed as such."""
    lattice = Lattice()
    lattice.register(p.KERNEL_PID)
    Echo(lattice)
    lattice.connect_local(p.KERNEL_PID, p.VFS_PID, encrypted=encrypted)
    body = body_of(size) if echo else p.VfsWrite(caller=1, fd=3, data=os.urandom(size))
    call = lattice.call
    reply = call(0, 2, body)
    assert (reply.body.data == body.data) if echo else reply.body.result == size

    def step() -> None:
        for _ in range(100):
            call(0, 2, body)

    return best_rate_sync(step, seconds, repeat)


async def in_process_queued(size: int, encrypted: bool, seconds: float, repeat: int) -> float:
    """``await sendrec`` to a server whose requests all go through its receive loop."""
    lattice = Lattice()
    lattice.register(p.KERNEL_PID)
    server = Echo(lattice)
    lattice.connect_local(p.KERNEL_PID, p.VFS_PID, encrypted=encrypted)
    body = body_of(size)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        server.endpoint.handler = None
        sendrec = lattice.sendrec
        reply = await sendrec(0, 2, body)
        assert reply.body.data == body.data and lattice.stats.handled_direct == 0

        async def step() -> int:
            for _ in range(100):
                await sendrec(0, 2, body)
            return 100

        rate = await best_rate_async(step, seconds, repeat)
        nursery.cancel_scope.cancel()
    return rate


def syscall_path(seconds: float, repeat: int) -> float:
    """``Kernel.start(close)``: dispatcher handler, request, sendrec, reply, result."""
    from xinim_host.kernel.dispatch import SyscallContext
    from xinim_host.kernel.kernel import Kernel
    from xinim_host.lib.syscalls import Sys
    from xinim_host.lib.usermem import FlatMemory

    lattice = Lattice()
    kernel = Kernel(lattice, console=None)   # type: ignore[arg-type]
    Echo(lattice)
    lattice.connect_local(p.KERNEL_PID, p.VFS_PID)
    ctx = SyscallContext(pid=5, args=(3, 0, 0, 0, 0, 0), mem=FlatMemory(4096))
    start, nr = kernel.start, int(Sys.CLOSE)
    assert start(nr, ctx, print) == 0

    def step() -> None:
        for _ in range(100):
            start(nr, ctx, print)

    return best_rate_sync(step, seconds, repeat)


# --- across processes --------------------------------------------------------------------

CHILD = r"""
import sys, trio
sys.path.insert(0, sys.argv[3])
from bench.ipc import Echo, make_plaintext, x25519_only
from xinim_host.lib.ipc import Lattice
from xinim_host.lib.transport import serve_socket

async def main(path, mode):
    lattice = Lattice(node_id=%d)
    Echo(lattice)
    if mode == "x25519":
        x25519_only()
    if mode == "plain":
        accept = lattice.accept_remote
        def accept_plain(src, src_node, dst, offer, binding):
            answer = accept(src, src_node, dst, offer, binding)
            make_plaintext(lattice, src, dst)
            return answer
        lattice.accept_remote = accept_plain
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_socket, lattice, path)
        print("ready", flush=True)
        while await trio.lowlevel.FdStream(0).receive_some(1):
            pass
        nursery.cancel_scope.cancel()

trio.run(main, sys.argv[1], sys.argv[2])
""" % SERVER_NODE


async def across_processes(encrypted: bool, seconds: float, repeat: int
                           ) -> dict[tuple[int, int], float]:
    """{(size, concurrency): round trips/s} against a node in another process."""
    from xinim_host.lib.transport import dial, node_client_pid

    results: dict[tuple[int, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="xbench-", dir="/tmp") as tmp:
        path = os.path.join(tmp, "node.sock")
        mode = "enc" if encrypted else "plain"
        proc = subprocess.Popen([sys.executable, "-c", CHILD, path, mode, ROOT],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
            lattice = Lattice(node_id=CLIENT_NODE)
            async with trio.open_nursery() as nursery:
                await dial(lattice, path, nursery)
                CLIENT_PID = node_client_pid(lattice.node_id)
                lattice.register(CLIENT_PID)
                await lattice.connect(CLIENT_PID, p.VFS_PID, node=SERVER_NODE)
                if not encrypted:
                    make_plaintext(lattice, CLIENT_PID, p.VFS_PID)
                sendrec = lattice.sendrec
                for size in SIZES:
                    body = body_of(size)
                    reply = await sendrec(CLIENT_PID, p.VFS_PID, body)
                    assert reply.body.data == body.data

                    async def one_at_a_time() -> int:
                        for _ in range(20):
                            await sendrec(CLIENT_PID, p.VFS_PID, body)
                        return 20

                    async def many_at_once() -> int:
                        async def worker() -> None:
                            for _ in range(10):
                                await sendrec(CLIENT_PID, p.VFS_PID, body)

                        async with trio.open_nursery() as workers:
                            for _ in range(CONCURRENCY):
                                workers.start_soon(worker)
                        return 10 * CONCURRENCY

                    results[(size, 1)] = await best_rate_async(one_at_a_time, seconds, repeat)
                    results[(size, CONCURRENCY)] = await best_rate_async(many_at_once, seconds,
                                                                         repeat)
                assert lattice.stats.tampered == lattice.stats.replayed == 0
                nursery.cancel_scope.cancel()
        finally:
            if proc.stdin:
                proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return results


# --- channel key establishment: hybrid vs X25519 only -------------------------------------

SETUP_ROUNDS = 100


def _best_us(fn: Callable[[], Any], rounds: int, repeat: int) -> float:
    """CPU time of this thread per call (steadier than wall time on a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        for _ in range(rounds):
            fn()
        best = min(best, (time.thread_time() - start) / rounds)
    return best * 1e6


def setup_local_us(repeat: int) -> float:
    """``connect_local`` (both sides of the handshake in this process), us each."""
    lattice = Lattice()
    lattice.register(p.KERNEL_PID)
    Echo(lattice)
    lattice.connect_local(p.KERNEL_PID, p.VFS_PID)   # warm: the first loads ML-KEM
    return _best_us(lambda: lattice.connect_local(p.KERNEL_PID, p.VFS_PID), SETUP_ROUNDS, repeat)


async def setup_remote_us(mode: str, repeat: int) -> float:
    """``connect`` to a node in another process (a round trip over the socket), us each."""
    from xinim_host.lib.transport import dial, node_client_pid

    with tempfile.TemporaryDirectory(prefix="xbench-", dir="/tmp") as tmp:
        path = os.path.join(tmp, "node.sock")
        proc = subprocess.Popen([sys.executable, "-c", CHILD, path, mode, ROOT],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
            lattice = Lattice(node_id=CLIENT_NODE)
            best = float("inf")
            async with trio.open_nursery() as nursery:
                await dial(lattice, path, nursery)
                CLIENT_PID = node_client_pid(lattice.node_id)
                lattice.register(CLIENT_PID)
                await lattice.connect(CLIENT_PID, p.VFS_PID, node=SERVER_NODE)
                for _ in range(min(repeat, 8)):   # (a link takes 1,024 handshakes at most)
                    start = time.perf_counter()
                    for _ in range(SETUP_ROUNDS):
                        await lattice.connect(CLIENT_PID, p.VFS_PID, node=SERVER_NODE)
                    best = min(best, (time.perf_counter() - start) / SETUP_ROUNDS)
                reply = await lattice.sendrec(CLIENT_PID, p.VFS_PID, body_of(64))
                assert reply.body.error == 0
                nursery.cancel_scope.cancel()
        finally:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=10)
    return best * 1e6


STARTUP = """
import sys
sys.path.insert(0, %r)
import bench.ipc
if sys.argv[1] == "x25519":
    bench.ipc.x25519_only()
from xinim_host.cli.run import main
sys.exit(main(["/bin/true"]))
""" % ROOT


def startup_ms(runs: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) ms of ``xinim-run /bin/true`` (a fresh interpreter each), per
    mode, the two modes alternating so that both see the same machine load.  CPU
    is user + system time of the run and what it waited for (its tracee)."""
    import resource

    times: dict[str, list[tuple[float, float]]] = {"x25519": [], "hybrid": []}
    env = dict(os.environ, XINIM_LOG="error")
    for _ in range(runs):
        for mode in times:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", STARTUP, mode], env=env,
                                  stdin=subprocess.DEVNULL, capture_output=True)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            times[mode].append((wall * 1e3, cpu * 1e3))
            assert done.returncode == 0, done.stderr.decode(errors="replace")
    return times


def kex_report(args: argparse.Namespace) -> None:
    """Channel set-up and start-up, X25519 only vs hybrid; steady state on both."""
    import statistics

    from xinim_host.lib import chankey

    real = chankey.Initiator, chankey.respond
    print(f"\nchannel keys: X25519 only vs hybrid ML-KEM-768 + X25519 "
          f"(best of {args.repeat} x {SETUP_ROUNDS} set-ups)")
    print(f"{'':<40}{'X25519':>12} {'hybrid':>12} {'hybrid/X25519':>14}")
    x25519_only()
    local_x = setup_local_us(args.repeat)
    rt_x = in_process_direct(64, True, args.seconds, args.repeat)
    chankey.Initiator, chankey.respond = real
    local_h = setup_local_us(args.repeat)
    rt_h = in_process_direct(64, True, args.seconds, args.repeat)

    def line(label: str, x: float, h: float, unit: str, fmt: str = ",.1f") -> None:
        print(f"{label:<40}{x:>10{fmt}}{unit:>2} {h:>10{fmt}}{unit:>2} {h / x:>13.2f}x")

    line("set-up, in-node connect_local (CPU)", local_x, local_h, "us")
    if not args.no_remote:
        x25519_only()
        remote_x = trio.run(setup_remote_us, "x25519", args.repeat)
        chankey.Initiator, chankey.respond = real
        remote_h = trio.run(setup_remote_us, "enc", args.repeat)
        line("set-up, connect across processes", remote_x, remote_h, "us")   # (wall time)
    line("steady state, direct 64 B (rt/s)", rt_x, rt_h, "", ",.0f")
    if args.startup_runs:
        times = startup_ms(args.startup_runs)
        for i, kind in enumerate(("wall", "CPU")):
            x = [t[i] for t in times["x25519"]]
            h = [t[i] for t in times["hybrid"]]
            for what, pick in (("min", min), ("median", statistics.median)):
                line(f"start-up xinim-run /bin/true, {kind} {what}", pick(x), pick(h), "ms")
        print(f"  ({args.startup_runs} runs each, alternating)")


# --- report ------------------------------------------------------------------------------


def row(label: str, size: int | str, enc: float, plain: float | None) -> str:
    size_s = f"{size} B" if isinstance(size, int) else size
    us = 1e6 / enc if enc else float("nan")
    if plain is None:
        return f"{label:<34}{size_s:>8} {enc:>12,.0f} {us:>8.2f}"
    ratio = enc / plain if plain else float("nan")
    return (f"{label:<34}{size_s:>8} {enc:>12,.0f} {us:>8.2f} {plain:>12,.0f} "
            f"{1e6 / plain:>8.2f} {ratio:>9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.4, help="length of one run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (best is kept)")
    parser.add_argument("--cpu", type=int, default=None,
                        help="pin the in-process part to this CPU")
    parser.add_argument("--no-remote", action="store_true", help="skip the cross-process part")
    parser.add_argument("--startup-runs", type=int, default=10,
                        help="xinim-run /bin/true start-ups per key exchange (0: skip)")
    parser.add_argument("--kex-only", action="store_true",
                        help="only the channel key part (set-up, start-up, steady state)")
    args = parser.parse_args()
    seconds, repeat = args.seconds, args.repeat
    import nacl

    if args.kex_only:
        kex_report(args)
        return

    print(f"xinim-host lattice IPC: sendrec round trips per second "
          f"(Python {sys.version.split()[0]}, trio {trio.__version__}, PyNaCl {nacl.__version__}; "
          f"best of {repeat} x {seconds:g} s)")
    print(f"{'path':<34}{'payload':>8} {'encrypted/s':>12} {'us/rt':>8} {'plaintext/s':>12} "
          f"{'us/rt':>8} {'enc/plain':>9}")
    affinity = os.sched_getaffinity(0)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    targets: dict[str, float] = {}
    for size in SIZES:
        enc = in_process_direct(size, True, seconds, repeat)
        plain = in_process_direct(size, False, seconds, repeat)
        if size == 64:
            targets["64 B each way (echo)"] = enc
        print(row("in-process, direct dispatch", size, enc, plain), flush=True)
    enc = in_process_direct(64, True, seconds, repeat, echo=False)
    plain = in_process_direct(64, False, seconds, repeat, echo=False)
    targets["64 B request, int reply (write)"] = enc
    print(row("  (request only: write, int reply)", 64, enc, plain), flush=True)
    for size in SIZES:
        enc = trio.run(in_process_queued, size, True, seconds, repeat)
        plain = trio.run(in_process_queued, size, False, seconds, repeat)
        print(row("in-process, queued receive loop", size, enc, plain), flush=True)
    print(row("in-process, Kernel.start(close)", "-", syscall_path(seconds, repeat), None),
          flush=True)
    os.sched_setaffinity(0, affinity)
    if not args.no_remote:
        enc_r = trio.run(across_processes, True, seconds, repeat)
        plain_r = trio.run(across_processes, False, seconds, repeat)
        for concurrency in (1, CONCURRENCY):
            label = ("across processes, 1 at a time" if concurrency == 1
                     else f"across processes, {concurrency} at once")
            for size in SIZES:
                print(row(label, size, enc_r[(size, concurrency)], plain_r[(size, concurrency)]),
                      flush=True)
    for what, rate in targets.items():
        verdict = "met" if rate >= 100_000 else "NOT met"
        print(f"target >= 100,000 encrypted in-process round trips/s, {what}: "
              f"{rate:,.0f} -- {verdict}")
    kex_report(args)


if __name__ == "__main__":
    main()
