"""Per-stop cost of the interceptor (xinim_host.intercept).

Runs tests/c/intercept_prog.c's getppid loop natively and under the Tracer,
with getppid trapped and answered in several ways, and prints the cost per
syscall (loop time minus a 0-iteration run, best of --repeat):

    python bench/tracer_stop.py [-n 100000] [--repeat 3] [--profile] [--before REV]

"inject" rows are the injected-syscall path (MM's mmap, the exec): at the
seccomp stop, then re-executed from the exit stop.  A re-executed call traps
like any program call and the tracer checks it is the one it set (there is no
register cookie that lets a call skip the filter).  ``--before REV`` runs the
same rows on git revision REV too (a temporary worktree) and prints both
columns with the ratio: what a change to the boundary costs.

"untrapped" = traced with a seccomp filter that does not name getppid: the
syscall never stops.  "pinned" = Tracer(cpus={one CPU}): tracer and tracee on
the same CPU.  --profile prints a cProfile of the pinned Complete loop.
"""
from __future__ import annotations

import argparse
import cProfile
import ctypes
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xinim_host.intercept import _libc
from xinim_host.intercept.actions import Complete, HostRun, Inject
from xinim_host.intercept.tracer import BaseEvents, Tracer

SYS_getppid = 110
SYS_getpid = 39
SRC = Path(__file__).resolve().parents[1] / "tests" / "c" / "intercept_prog.c"


class Answer(BaseEvents):
    def __init__(self, action: Any) -> None:
        self.action = action

    def on_syscall(self, t: Any, nr: int, args: tuple[int, ...]) -> Any:
        return self.action


async def traced(prog: str, n: int, handler: BaseEvents, trap: tuple[int, ...], cpus: set[int] | None) -> float:
    tracer = Tracer(cpus=cpus, one_stop_complete=True)
    with open(os.devnull, "wb") as null:  # noqa: ASYNC230 - /dev/null
        t0 = time.perf_counter()
        await tracer.run([prog, "getppid", str(n)], {}, handler, trap=trap, stdio=(None, null.fileno(), None))
        return time.perf_counter() - t0


def native(prog: str, n: int) -> float:
    t0 = time.perf_counter()
    subprocess.run([prog, "getppid", str(n)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def per_call(fn: Any, n: int, repeat: int) -> float:
    """Best-of-``repeat`` (T(n) - T(0)) / n, in microseconds."""
    best = float("inf")
    for _ in range(repeat):
        best = min(best, (fn(n) - fn(0)) / n)
    return best * 1e6


def ptrace_call_costs(prog: str) -> dict[str, float]:
    """PTRACE_GETREGS on a parked tracee: python-ptrace binding vs raw ctypes."""
    from ptrace.binding import ptrace_getregs

    out: dict[str, float] = {}

    class Measure(BaseEvents):
        def on_syscall(self, t: Any, nr: int, args: tuple[int, ...]) -> Any:
            k = 20000
            t0 = time.perf_counter()
            for _ in range(k):
                ptrace_getregs(t.tid)
            out["python-ptrace ptrace_getregs"] = (time.perf_counter() - t0) / k * 1e6
            ref = ctypes.byref(t.regs)
            p = _libc.ptrace
            t0 = time.perf_counter()
            for _ in range(k):
                p(12, t.tid, 0, ref)
            out["raw ctypes PTRACE_GETREGS"] = (time.perf_counter() - t0) / k * 1e6
            return Complete(0)

    trio.run(traced, prog, 1, Measure(), (SYS_getppid,), None)
    return out


def _chain(second: int) -> Any:
    """getppid -> Inject getpid (at the seccomp stop) -> Inject ``second``
    re-executed from the exit stop -> Complete."""
    def after_second(t: Any, r: int) -> Any:
        return Complete(r)

    def after_first(t: Any, r: int) -> Any:
        return Inject(second, (), after_second)

    return Inject(SYS_getpid, (), after_first)


def rows_for(prog: str) -> list[tuple[str, Any]]:
    cpu = {min(os.sched_getaffinity(0))}
    trap = (SYS_getppid,)

    def t(action: Any, cpus: set[int] | None, trapset: tuple[int, ...] = trap):
        return lambda n: trio.run(traced, prog, n, Answer(action), trapset, cpus)

    return [
        ("native getppid (no tracer)", lambda n: native(prog, n)),
        ("traced, getppid not trapped", t(HostRun(), None, (SYS_getppid + 1,))),
        ("trapped, Complete, pinned", t(Complete(4242), cpu)),
        ("trapped, HostRun, pinned", t(HostRun(), cpu)),
        ("trapped, HostRun+on_result, pinned", t(HostRun(on_result=lambda tr, r: None), cpu)),
        ("inject at entry, Complete, pinned", t(Inject(SYS_getpid, (), lambda tr, r: Complete(r)), cpu)),
        ("inject + re-exec untrapped, pinned", t(_chain(SYS_getpid), cpu)),
        ("inject + re-exec trapped, pinned", t(_chain(SYS_getppid), cpu)),
        ("trapped, Complete, unpinned", t(Complete(4242), None)),
        ("trapped, HostRun, unpinned", t(HostRun(), None)),
    ]


def _before(rev: str, n: int, repeat: int) -> dict[str, float]:
    """The same rows measured on git revision ``rev`` (this script copied into a
    temporary worktree of it)."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as d:
        wt = os.path.join(d, "wt")
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", "-q", wt, rev], check=True)
        try:
            shutil.copy(__file__, os.path.join(wt, "bench", "tracer_stop.py"))
            out = subprocess.run([sys.executable, os.path.join(wt, "bench", "tracer_stop.py"),
                                  "-n", str(n), "--repeat", str(repeat), "--json"],
                                 check=True, capture_output=True, text=True).stdout
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", wt], check=False)
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100_000, help="syscalls per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--before", metavar="REV", help="also measure git revision REV, side by side")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    before = _before(a.before, a.n, a.repeat) if a.before else None
    with tempfile.TemporaryDirectory() as d:
        prog = os.path.join(d, "intercept_prog")
        subprocess.run(["gcc", "-O2", "-pthread", "-o", prog, str(SRC)], check=True)
        cpu = {min(os.sched_getaffinity(0))}
        rows = rows_for(prog)
        if a.json:
            print(json.dumps({name: per_call(fn, a.n, a.repeat) for name, fn in rows}))
            return
        if before is None:
            print(f"{'case':40s} {'us/syscall':>11s}")
        else:
            print(f"{'case':40s} {'us/syscall':>11s} {a.before[:12]:>12s} {'ratio':>6s}")
        for name, fn in rows:
            us = per_call(fn, a.n, a.repeat)
            if before is None:
                print(f"{name:40s} {us:11.2f}", flush=True)
            else:
                old = before.get(name, float("nan"))
                print(f"{name:40s} {us:11.2f} {old:12.2f} {us / old:6.2f}", flush=True)
        print()
        for name, us in ptrace_call_costs(prog).items():
            print(f"{name:40s} {us:11.2f}")
        if a.profile:
            prof = cProfile.Profile()
            prof.enable()
            trio.run(traced, prog, a.n, Answer(Complete(4242)), (SYS_getppid,), cpu)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
