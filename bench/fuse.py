#!/usr/bin/env python3
"""Benchmark the xinim FUSE export against a kernel tmpfs, side by side.

    python bench/fuse.py [--size MIB] [--ops N] [--mount DIR] [--tmpfs DIR]

Measures, on both filesystems in one run: sequential write and read MB/s with
1 MiB and 4 KiB blocks (``--size`` MiB, default 256) and create+stat+unlink
ops/s; prints the xinim/tmpfs ratios.  The FUSE server runs in a child
process (``--serve DIR``), the I/O in this one, so the two never share a GIL.
Needs root (or a user allowed to mount FUSE with allow_other).
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

MiB = 1 << 20


# ---------------------------------------------------------------------- server
def serve(mountpoint: str, strict: bool) -> None:
    import trio

    from xinim_host.vfs_fuse.fuse_export import serve_fuse
    from xinim_host.vfs_fuse.ramfs import Ramfs

    logging.basicConfig(level=logging.WARNING)

    async def main() -> None:
        fs = Ramfs()
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                kw = dict(entry_timeout=0.0, attr_timeout=0.0, keep_cache=False) if strict else {}
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


def seq_read(path: Path, size: int, block: int) -> float:
    buf = bytearray(block)
    fd = os.open(path, os.O_RDONLY)
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


def run_suite(base: Path, size: int, ops: int, data: memoryview) -> dict[str, float]:
    work = base / "bench"
    work.mkdir(exist_ok=True)
    f = work / "seq"
    r: dict[str, float] = {}
    for block, label in ((MiB, "1 MiB"), (4096, "4 KiB")):
        r[f"seq write {label} (MB/s)"] = seq_write(f, size, block, data)
        r[f"seq read  {label} (MB/s)"] = seq_read(f, size, block)
        os.unlink(f)
    r["create+stat+unlink (ops/s)"] = meta_ops(work, ops)
    work.rmdir()
    return r


def start_server(mountpoint: Path, strict: bool, thp: bool) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if thp:   # glibc backs its heap with transparent huge pages: 512x fewer faults
        env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"
    cmd = [sys.executable, os.path.abspath(__file__), "--serve", str(mountpoint)]
    if strict:
        cmd.append("--strict")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(b"ready"):
        proc.kill()
        raise SystemExit(f"xinim FUSE server failed to start (exit {proc.wait()})")
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256, help="MiB per sequential test (256)")
    ap.add_argument("--ops", type=int, default=2000, help="create+stat+unlink rounds (2000)")
    ap.add_argument("--mount", help="xinim mount dir (default: a temp dir)")
    ap.add_argument("--tmpfs", default="/dev/shm", help="a kernel tmpfs to compare with")
    ap.add_argument("--strict", action="store_true",
                    help="also measure with entry/attr timeouts 0 and no keep_cache "
                         "(the kernel asks the server on every access)")
    ap.add_argument("--thp", action="store_true",
                    help="run the server with GLIBC_TUNABLES=glibc.malloc.hugetlb=1")
    ap.add_argument("--pin", type=int, metavar="CPU",
                    help="run client and server on this one CPU (on VMs, cross-CPU "
                         "wakeups can double the cost of a small FUSE request)")
    ap.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.strict)
        return

    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})       # inherited by the server
    size = args.size * MiB
    data = memoryview(os.urandom(MiB))
    tmp = Path(tempfile.mkdtemp(prefix="xinim-bench-"))
    mp = Path(args.mount) if args.mount else tmp / "mnt"
    shm = Path(tempfile.mkdtemp(dir=args.tmpfs, prefix="xinim-bench-"))
    runs: dict[str, dict[str, float]] = {}
    try:
        for strict in (False, True) if args.strict else (False,):
            proc = start_server(mp, strict, args.thp)
            try:
                runs["xinim strict" if strict else "xinim"] = run_suite(mp, size, args.ops, data)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmpfs = run_suite(shm, size, args.ops, data)
    finally:
        shutil.rmtree(shm, ignore_errors=True)

    where = f"pinned to CPU {args.pin}" if args.pin is not None else f"{os.cpu_count()} CPUs"
    print(f"xinim FUSE export vs kernel tmpfs ({args.size} MiB sequential, "
          f"{args.ops} metadata rounds, {where})")
    keys = list(tmpfs)
    w = max(len(k) for k in keys)
    head = f"{'':{w}}  {'tmpfs':>10}"
    for name in runs:
        head += f"  {name:>14}  {'ratio':>6}"
    print(head)
    for k in keys:
        line = f"{k:{w}}  {tmpfs[k]:10.0f}"
        for r in runs.values():
            line += f"  {r[k]:14.0f}  {r[k] / tmpfs[k]:6.1%}"
        print(line)


if __name__ == "__main__":
    main()
