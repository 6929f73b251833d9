"""Sockets under XINIM, side by side with native and PRoot (issue 13's benchmark).

    python bench/net.py [--repeat 3] [--quick] [--modes native,proot,xinim]

One workload (bench/net_work.py) runs in each mode and times itself: AF_UNIX
stream round trips/s with 64-byte messages, AF_UNIX MB/s with 1 MiB messages,
loopback TCP MB/s, loopback TCP connect+accept+close per second, and
``python3 -m http.server`` + ``curl`` of a 10 MB file (both inside the mode).
Each figure is the median of --repeat runs; the last columns are xinim's figure
over PRoot's and over native (for the curl row, time: lower is better, and the
ratios are PRoot's time over xinim's and native's over xinim's, so that above 1
is always "xinim is faster").
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "net_work.py"
XINIM_RUN = str(Path(sys.executable).with_name("xinim-run"))
PYTHON = "/usr/bin/python3"
ROWS = (("unix_rtt", "AF_UNIX round trips/s (64 B)", True),
        ("unix_mbps", "AF_UNIX MB/s (1 MiB messages)", True),
        ("tcp_mbps", "loopback TCP MB/s", True),
        ("tcp_connects", "TCP connect+accept+close/s", True),
        ("http_curl", "http.server + curl 10 MB (s)", False))


def run(mode: str, quick: bool) -> dict[str, float]:
    tmp = tempfile.mkdtemp(prefix="netbench-", dir="/dev/shm")
    args = [str(WORK), tmp] + (["--quick"] if quick else [])
    if mode == "native":
        cmd = [PYTHON] + args
    elif mode == "proot":
        cmd = ["proot", PYTHON] + args
    else:
        cmd = [XINIM_RUN, "--bind", f"{ROOT / 'bench'}:/b", PYTHON, "/b/net_work.py", "/tmp"] \
            + (["--quick"] if quick else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if out.returncode != 0:
        print(f"{mode}: failed ({out.returncode}): {out.stderr[-2000:]}", file=sys.stderr)
        return {}
    figures = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            figures[parts[0]] = float(parts[1])
    return figures


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--modes", default="native,proot,xinim")
    opts = ap.parse_args()
    modes = opts.modes.split(",")
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for _ in range(opts.repeat):
        for mode in modes:                         # interleaved: load hits all alike
            runs[mode].append(run(mode, opts.quick))
    med = {m: {k: statistics.median(r[k] for r in runs[m] if k in r)
               for k, _, _ in ROWS if any(k in r for r in runs[m])} for m in modes}
    head = f"{'':34}" + "".join(f"{m:>12}" for m in modes) + f"{'x/proot':>10}{'x/native':>10}"
    print(head)
    for key, label, higher in ROWS:
        line = f"{label:34}"
        for m in modes:
            v = med[m].get(key)
            line += f"{v:12.1f}" if v is not None else f"{'-':>12}"
        x = med.get("xinim", {}).get(key)
        for ref in ("proot", "native"):
            r = med.get(ref, {}).get(key)
            if x and r:
                line += f"{(x / r if higher else r / x):10.2f}"
            else:
                line += f"{'-':>10}"
        print(line)


if __name__ == "__main__":
    main()
