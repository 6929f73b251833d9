"""Waiting on events under xinim-run, side by side with native and PRoot.

    python bench/events.py [--rounds 1000] [--modes native,proot,xinim]

* ``epoll wake``: epoll_wait wake-up latency through an eventfd -- a child writes
  the CLOCK_MONOTONIC time as the eventfd's value, the parent (parked in
  epoll_wait) reads it back; ping-pong, median and p99 in microseconds.
* ``timerfd 1 ms``: a 1 ms interval timerfd read --rounds times: how late each
  read returns after the expiry it reports (median, p99) and how many reads the
  ticks took (a read that reports 2 ticks missed one wake-up).
* ``asyncio echo``: round trips per second of an asyncio echo over a socketpair
  (needs sockets in XINIM: reported n/a where socketpair fails).

Each figure is measured inside the runner by bench/c/events_bench.c (compiled
at run time) or the Python script, so the runner's start-up is left out.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
XINIM_RUN = str(Path(sys.executable).with_name("xinim-run"))
MODES = ("native", "proot", "xinim")

ECHO = r"""
import asyncio, socket, sys, time
N = int(sys.argv[1])
async def main():
    a, b = socket.socketpair()
    loop = asyncio.get_running_loop()
    async def echo():
        r, w = await asyncio.open_connection(sock=b)
        while data := await r.read(64):
            w.write(data)
            await w.drain()
    task = asyncio.create_task(echo())
    r, w = await asyncio.open_connection(sock=a)
    t0 = time.perf_counter()
    for _ in range(N):
        w.write(b"ping")
        await w.drain()
        await r.readexactly(4)
    print("rtps %.1f" % (N / (time.perf_counter() - t0)))
    w.close()
    await task
asyncio.run(main())
"""


def runner(mode: str, bindir: Path) -> tuple[list[str], str]:
    """(command prefix, where the bench files are seen from inside)."""
    if mode == "native":
        return [], str(bindir)
    if mode == "proot":
        return ["proot"], str(bindir)
    return [XINIM_RUN, "--bind", f"{bindir}:/b"], "/b"


def run(mode: str, bindir: Path, argv: list[str]) -> str | None:
    prefix, where = runner(mode, bindir)
    cmd = prefix + [a.replace("{B}", where) for a in argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("XINIM_SOCKET")}
    env["PROOT_NO_SECCOMP"] = "1"
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/", timeout=600)
    if res.returncode != 0:
        print(f"bench: {mode}: {' '.join(cmd)} -> {res.returncode}: "
              f"{res.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return res.stdout


def figures(out: str) -> list[float]:
    line = next(l for l in out.splitlines() if l.startswith("us"))
    return [float(x) for x in line.split()[1:]]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--echo", type=int, default=2000, help="asyncio echo round trips")
    ap.add_argument("--modes", default=",".join(MODES))
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if "proot" in modes and not shutil.which("proot"):
        modes.remove("proot")
    rows: dict[str, dict[str, str]] = {}
    base: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="xinim-bench-events-") as tmp:
        bindir = Path(tmp)
        subprocess.run(["gcc", "-O2", "-o", str(bindir / "events_bench"),
                        str(ROOT / "bench" / "c" / "events_bench.c")], check=True)
        (bindir / "echo.py").write_text(ECHO)
        for mode in modes:
            out = run(mode, bindir, ["{B}/events_bench", "wake", str(args.rounds)])
            if out:
                v = figures(out)[10:] or figures(out)          # the first rounds warm up
                rows.setdefault("epoll wake median us", {})[mode] = _fig(statistics.median(v), mode, "wake50", base)
                rows.setdefault("epoll wake p99 us", {})[mode] = _fig(pct(v, 0.99), mode, "wake99", base)
            out = run(mode, bindir, ["{B}/events_bench", "timer", str(args.rounds)])
            if out:
                v = figures(out)
                tail = next(l for l in out.splitlines() if l.startswith("ticks")).split()
                ticks, reads = int(tail[1]), int(tail[3])
                rows.setdefault("timerfd late median us", {})[mode] = _fig(statistics.median(v), mode, "t50", base)
                rows.setdefault("timerfd late p99 us", {})[mode] = _fig(pct(v, 0.99), mode, "t99", base)
                rows.setdefault("timerfd reads per 1000 ticks", {})[mode] = _fig(1000 * reads / ticks, mode, "reads", base)
            out = run(mode, bindir, [sys.executable if mode != "xinim" else "/usr/bin/python3",
                                     "{B}/echo.py", str(args.echo)])
            if out and out.startswith("rtps"):
                rows.setdefault("asyncio echo round trips/s", {})[mode] = _fig(float(out.split()[1]), mode, "echo", base)
            else:
                rows.setdefault("asyncio echo round trips/s", {})[mode] = "n/a"
    width = max(len(r) for r in rows) + 2
    print(f"{'':<{width}}" + "".join(f"{m:>22}" for m in modes))
    for name, per in rows.items():
        print(f"{name:<{width}}" + "".join(f"{per.get(m, '-'):>22}" for m in modes))
    print("\nratios are to native; the machine is shared, so repeat for stable figures")
    return 0


def _fig(value: float, mode: str, key: str, base: dict[str, float]) -> str:
    if mode == "native":
        base[key] = value
        return f"{value:.1f}"
    ref = base.get(key)
    return f"{value:.1f} ({value / ref:.1f}x)" if ref else f"{value:.1f}"


if __name__ == "__main__":
    sys.exit(main())
