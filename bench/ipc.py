"""Lattice IPC benchmark: sendrec round trips per second.

    .venv/bin/python bench/ipc.py [--seconds 0.4] [--repeat 5] [--cpu N] [--no-remote]

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
plaintext ones (``connect_local(..., encrypted=False)``), with their ratio.  Each is
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

from xinim_host.kernel import ipc, protocol as p  # noqa: E402
from xinim_host.lib.ipc import Lattice  # noqa: E402
from xinim_host.lib.server import Server  # noqa: E402

SIZES = (64, 4096)
CONCURRENCY = 16
CLIENT_PID, CLIENT_NODE, SERVER_NODE = 100, 7, 1


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
from bench.ipc import Echo, make_plaintext
from xinim_host.lib.ipc import Lattice
from xinim_host.lib.transport import serve_socket

async def main(path, mode):
    lattice = Lattice(node_id=%d)
    Echo(lattice)
    if mode == "plain":
        accept = lattice.accept_remote
        def accept_plain(src, src_node, dst, public):
            key = accept(src, src_node, dst, public)
            make_plaintext(lattice, src, dst)
            return key
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
    from xinim_host.lib.transport import dial

    results: dict[tuple[int, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="xbench-", dir="/tmp") as tmp:
        path = os.path.join(tmp, "node.sock")
        mode = "enc" if encrypted else "plain"
        proc = subprocess.Popen([sys.executable, "-c", CHILD, path, mode, ROOT],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
            lattice = Lattice(node_id=CLIENT_NODE)
            lattice.register(CLIENT_PID)
            async with trio.open_nursery() as nursery:
                await dial(lattice, path, nursery)
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
    args = parser.parse_args()
    seconds, repeat = args.seconds, args.repeat
    import nacl

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


if __name__ == "__main__":
    main()
