#!/usr/bin/env python3
"""What durability under --image costs: fsync latency and journaled write MB/s.

    python bench/durability.py [--fsyncs N] [--mib M] [--dir HOSTDIR]

Runs bench/c/fsync_loop.c three ways and prints them side by side:

* native        -- on the host filesystem (HOSTDIR, default: the system temp dir),
                   a real fsync / fdatasync to disk;
* xinim --image -- in /root of a ``xinim-run --image HOSTDIR/...`` system: every
                   fsync appends a journal record next to the image and
                   fdatasyncs it (vfs_fuse/journal.py);
* xinim         -- the same without --image (fsync of a pure ramfs: answered at
                   once), to tell XINIM's own cost from the journal's.

Ratios are xinim --image / native (ms: higher is slower; MB/s: lower is slower).
The image lives on the same filesystem as the native run, so both pay for the
same disk.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
XINIM_RUN = Path(sys.executable).parent / "xinim-run"


def run(cmd: list[str]) -> dict[str, float]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({out.returncode}): {out.stderr[-2000:]}")
    return {k: float(v) for k, v in re.findall(r"^(\w+) ([\d.]+)$", out.stdout, re.M)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fsyncs", type=int, default=300, help="4 KiB write+fsync rounds")
    ap.add_argument("--mib", type=int, default=32, help="MiB streamed, fdatasync per MiB")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="host directory to use")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="xinim-dur-bench-", dir=args.dir))
    try:
        bindir = work / "bin"
        bindir.mkdir()
        prog = bindir / "fsync_loop"
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(prog), str(HERE / "c" / "fsync_loop.c")],
                       check=True)
        native_dir = work / "native"
        native_dir.mkdir()
        counts = [str(args.fsyncs), str(args.mib)]
        rows = {
            "native": run([str(prog), str(native_dir), *counts]),
            "xinim --image": run([str(XINIM_RUN), "--image", str(work / "state.img"),
                                  "--bind", f"{bindir}:/t", "/t/fsync_loop", "/root", *counts]),
            "xinim (no image)": run([str(XINIM_RUN), "--bind", f"{bindir}:/t", "/t/fsync_loop",
                                     "/root", *counts]),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    nat = rows["native"]
    print(f"{args.fsyncs} x (4 KiB write + fsync); {args.mib} MiB in 64 KiB writes, "
          f"fdatasync per MiB; host dir {args.dir}")
    print(f"{'':18} {'ms/fsync':>10} {'ratio':>7} {'MB/s':>9} {'ratio':>7}")
    for name, r in rows.items():
        print(f"{name:18} {r['fsync_ms']:10.3f} {r['fsync_ms'] / nat['fsync_ms']:7.2f} "
              f"{r['journal_mbs']:9.1f} {r['journal_mbs'] / nat['journal_mbs']:7.2f}")


if __name__ == "__main__":
    main()
