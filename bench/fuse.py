#!/usr/bin/env python3
"""Benchmark the xinim FUSE export against a kernel tmpfs, side by side.

    python bench/fuse.py [--size MIB] [--ops N] [--repeat N] [--mount DIR] [--tmpfs DIR]
                         [--baseline TREE] [--no-c] [--strict] [--thp] [--pin CPU]

Measures, in one run: sequential write and read MB/s with 1 MiB and 4 KiB
blocks (``--size`` MiB, default 256; each read follows the write, as a program
reads back what it wrote, so FUSE serves it from the pages the write filled;
the "cold" row reads the same file after dropping those pages: what the server
itself delivers) and create+stat+unlink ops/s on a kernel
tmpfs, on the xinim FUSE export and on a minimal C filesystem on libfuse's
low-level API (bench/c/memfs_ll.c, compiled here: the "libfuse C" column, what
FUSE itself costs on this machine with no work of the server's own).  Every
column is measured ``--repeat`` times, interleaved (tmpfs, C, xinim, ...; the
machine is shared), and the medians and their ratios to tmpfs are printed.
``--baseline TREE`` adds a column served by another checkout (``git archive
main | tar -x -C TREE``) for an A/B in the same run.  The FUSE servers run in
child processes (``--serve DIR``), the I/O in this one, so they never share a
GIL.  Needs root (or a user allowed to mount FUSE).
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

MiB = 1 << 20


# ---------------------------------------------------------------------- server
def serve(mountpoint: str, strict: bool, spin_us: float | None = None) -> None:
    import trio

    from xinim_host.vfs_fuse.fuse_export import serve_fuse
    from xinim_host.vfs_fuse.ramfs import Ramfs

    logging.basicConfig(level=logging.WARNING)
    if os.environ.get("XINIM_BENCH_LOOP_STATS"):
        logging.getLogger("xinim_host.vfs_fuse.fuse_loop").setLevel(logging.DEBUG)

    async def main() -> None:
        fs = Ramfs()
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                kw: dict[str, object] = (dict(entry_timeout=0.0, attr_timeout=0.0, keep_cache=False)
                                         if strict else {})
                if spin_us is not None:
                    kw["spin_s"] = spin_us * 1e-6
                await nursery.start(functools.partial(serve_fuse, fs, mountpoint, **kw))
                print("ready", flush=True)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    trio.run(main)


# ---------------------------------------------------------------------- client
def seq_write(path: Path, size: int, block: int, data: memoryview) -> float:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    t0 = time.perf_counter()
    try:
        left = size
        while left > 0:
            n = os.write(fd, data[:min(block, left)])
            left -= n
    finally:
        os.close(fd)
    return size / MiB / (time.perf_counter() - t0)


def seq_read(path: Path, size: int, block: int, cold: bool = False) -> float:
    """``cold``: first drop the file's clean cached pages (fadvise DONTNEED), so
    a FUSE file is read from its server, as a file the kernel never cached is
    (on tmpfs the pages are the file: nothing is dropped)."""
    buf = bytearray(block)
    fd = os.open(path, os.O_RDONLY)
    if cold:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    t0 = time.perf_counter()
    try:
        got = 0
        while True:
            n = os.readv(fd, [buf])
            if n == 0:
                break
            got += n
    finally:
        os.close(fd)
    dt = time.perf_counter() - t0
    if got != size:
        raise RuntimeError(f"read {got} bytes of {size} from {path}")
    return size / MiB / dt


def meta_ops(d: Path, n: int) -> float:
    paths = [d / f"f{i:06d}" for i in range(n)]
    t0 = time.perf_counter()
    for p in paths:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        os.stat(p)
        os.unlink(p)
    return n / (time.perf_counter() - t0)


def server_cpu(pid: int) -> float:
    """CPU seconds the server process (all its threads) has run so far
    (schedstat: nanoseconds): on a shared machine a steadier measure of the
    server's own cost than the client's wall clock."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass                    # a thread that just ended
    return total / 1e9


def run_suite(base: Path, size: int, ops: int, data: memoryview,
              pid: int | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Throughputs, and with ``pid`` the server's CPU time per unit (µs per
    MiB or per round)."""
    work = base / "bench"
    work.mkdir(exist_ok=True)
    f = work / "seq"
    r: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def measure(key: str, units: float, fn: Callable[[], float]) -> None:
        c0 = server_cpu(pid) if pid else 0.0
        r[key] = fn()
        if pid:
            cpu[key] = (server_cpu(pid) - c0) / units * 1e6

    for block, label in ((MiB, "1 MiB"), (4096, "4 KiB")):
        measure(f"seq write {label} (MB/s)", size / MiB,
                lambda: seq_write(f, size, block, data))
        measure(f"seq read  {label} (MB/s)", size / MiB, lambda: seq_read(f, size, block))
        if block == MiB:
            measure(f"seq read  {label} cold (MB/s)", size / MiB,
                    lambda: seq_read(f, size, block, cold=True))
        os.unlink(f)
    measure("create+stat+unlink (ops/s)", ops, lambda: meta_ops(work, ops))
    work.rmdir()
    return r, cpu


C_SRC = Path(__file__).resolve().parent / "c" / "memfs_ll.c"


def build_c(bindir: Path) -> Path | None:
    """Compile the libfuse reference filesystem; None (with a note) if this
    host cannot (no gcc, no libfuse 3 headers)."""
    exe = bindir / "memfs_ll"
    try:
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], check=True,
                               capture_output=True, text=True).stdout.split()
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(C_SRC), *flags],
                       check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"note: no libfuse C column ({e})", file=sys.stderr)
        return None
    return exe


def set_read_ahead(mountpoint: Path, kb: int) -> None:
    """What serve_fuse does for its own mount (the kernel starts FUSE mounts
    at 128 KiB, so reads would arrive in 128 KiB requests)."""
    dev = os.stat(mountpoint).st_dev    # answered after INIT, which caps readahead
    try:
        Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb").write_text(str(kb))
    except OSError as e:
        print(f"note: readahead of {mountpoint} left as is ({e})", file=sys.stderr)


def start_server(cmd: list[str], mountpoint: Path,
                 env: dict[str, str]) -> subprocess.Popen[bytes]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(b"ready"):
        proc.kill()
        raise SystemExit(f"FUSE server {cmd[:2]} failed to start (exit {proc.wait()})")
    return proc


def stop_server(proc: subprocess.Popen[bytes], mountpoint: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def xinim_cmd(tree: Path, mountpoint: Path, strict: bool,
              spin_us: float | None = None) -> list[str]:
    cmd = [sys.executable, str(tree / "bench" / "fuse.py"), "--serve", str(mountpoint)]
    if spin_us is not None:
        cmd += ["--spin-us", str(spin_us)]
    return cmd + ["--strict"] if strict else cmd


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256, help="MiB per sequential test (256)")
    ap.add_argument("--ops", type=int, default=2000, help="create+stat+unlink rounds (2000)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="measure every column this many times, interleaved; medians (3)")
    ap.add_argument("--mount", help="directory for the FUSE mounts (default: a temp dir)")
    ap.add_argument("--tmpfs", default="/dev/shm", help="a kernel tmpfs to compare with")
    ap.add_argument("--strict", action="store_true",
                    help="also measure with entry/attr timeouts 0 and no keep_cache "
                         "(the kernel asks the server on every access)")
    ap.add_argument("--baseline", metavar="TREE",
                    help="also measure the export of another checkout (A/B in one run)")
    ap.add_argument("--no-c", action="store_true", help="leave out the libfuse C column")
    ap.add_argument("--thp", action="store_true",
                    help="run the server with GLIBC_TUNABLES=glibc.malloc.hugetlb=1")
    ap.add_argument("--pin", type=int, metavar="CPU",
                    help="run client and servers on this one CPU (on VMs, cross-CPU "
                         "wakeups can double the cost of a small FUSE request)")
    ap.add_argument("--spin-us", type=float, metavar="US",
                    help="the xinim server's poll of /dev/fuse before it sleeps (default: "
                         "fuse_loop.SPIN_S; 0: never)")
    ap.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.strict, args.spin_us)
        return

    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})       # inherited by the servers
    size = args.size * MiB
    data = memoryview(os.urandom(MiB))
    tmp = Path(tempfile.mkdtemp(prefix="xinim-bench-"))
    base = Path(args.mount) if args.mount else tmp
    env = dict(os.environ)
    if args.thp:   # glibc backs its heap with transparent huge pages: 512x fewer faults
        env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"
    here = Path(__file__).resolve().parent.parent
    # name -> (command, mount point, the xinim tree it imports; None: the C
    # server, whose readahead we raise as serve_fuse raises its own)
    servers: dict[str, tuple[list[str], Path, Path | None]] = {}
    exe = None if args.no_c else build_c(tmp)
    if exe is not None:
        servers["libfuse C"] = ([str(exe), str(base / "c")], base / "c", None)
    servers["xinim"] = (xinim_cmd(here, base / "x", False, args.spin_us), base / "x", here)
    if args.strict:
        servers["xinim strict"] = (xinim_cmd(here, base / "xs", True, args.spin_us),
                                   base / "xs", here)
    if args.baseline:
        tree = Path(args.baseline).resolve()
        servers["baseline"] = (xinim_cmd(tree, base / "b", False), base / "b", tree)
    shm = Path(tempfile.mkdtemp(dir=args.tmpfs, prefix="xinim-bench-"))
    runs: dict[str, list[dict[str, float]]] = {"tmpfs": []}
    runs.update({name: [] for name in servers})
    cpus: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    try:
        for _ in range(args.repeat):
            runs["tmpfs"].append(run_suite(shm, size, args.ops, data)[0])
            for name, (cmd, mp, tree) in servers.items():
                proc = start_server(cmd, mp, env=dict(env, PYTHONPATH=str(tree)) if tree
                                    else env)
                try:
                    if tree is None:
                        set_read_ahead(mp, 1024)
                    r, cpu = run_suite(mp, size, args.ops, data, proc.pid)
                    runs[name].append(r)
                    cpus[name].append(cpu)
                finally:
                    stop_server(proc, mp)
    finally:
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)

    med = {name: {k: median([r[k] for r in rs]) for k in rs[0]} for name, rs in runs.items()}
    tmpfs = med.pop("tmpfs")
    where = f"pinned to CPU {args.pin}" if args.pin is not None else f"{os.cpu_count()} CPUs"
    print(f"FUSE exports vs kernel tmpfs ({args.size} MiB sequential, {args.ops} metadata "
          f"rounds, medians of {args.repeat} interleaved runs, {where}, load "
          f"{os.getloadavg()[0]:.1f})")
    keys = list(tmpfs)
    w = max(len(k) for k in keys)
    head = f"{'':{w}}  {'tmpfs':>10}"
    for name in med:
        head += f"  {name:>12}  {'ratio':>6}"
    print(head)
    for k in keys:
        line = f"{k:{w}}  {tmpfs[k]:10.0f}"
        for r in med.values():
            line += f"  {r[k]:12.0f}  {r[k] / tmpfs[k]:6.1%}"
        print(line)
    # The servers' own CPU time: steadier than wall-clock ratios when the
    # machine is shared (the client's syscalls and the kernel's copies are
    # not in it).
    cmed = {name: {k: median([c[k] for c in cs]) for k in cs[0]} for name, cs in cpus.items()}
    print("\nserver CPU time (medians)")
    print(f"{'':{w}}  " + "  ".join(f"{name:>12}" for name in cmed))
    for k in keys:
        label = k.split(" (")[0] + (" (µs/round)" if "ops/s" in k else " (µs/MiB)")
        print(f"{label:{w}}  " + "  ".join(f"{c[k]:12.1f}" for c in cmed.values()))


if __name__ == "__main__":
    main()
