#!/usr/bin/env python3
"""LTP conformance: the same LTP syscall tests natively and under xinim-run.

Nothing of LTP is in this repository.  Fetch and build the syscall tests once:

    git clone https://github.com/linux-test-project/ltp /tmp/ltp
    cd /tmp/ltp && make autotools && ./configure && make -C lib
    for d in $(python3 conformance/ltp.py --dirs); do
        make -C /tmp/ltp/testcases/kernel/syscalls/$d; done

(autoconf, automake, m4 and gcc are needed; only the directories of the list are
built.)  Then, from the repository:

    python3 conformance/ltp.py --ltp /tmp/ltp            # both sides, one test at a time
    python3 conformance/ltp.py --ltp /tmp/ltp -j 2 fcntl14 flock02   # some tests
    python3 conformance/ltp.py --ltp /tmp/ltp --only xinim --json out.json

It prints one row per test (native, XINIM: pass / TFAIL / TBROK / TCONF /
timeout / crash), the totals, and the tests that pass natively but not under
XINIM.  The list is ``conformance/ltp-syscalls.txt`` (runtest/syscalls names).
Native runs use a tmpfs directory (/dev/shm) as TMPDIR, since XINIM's /tmp is a
ramfs that answers as tmpfs does; under XINIM the LTP tree is bound read-only at
/ltp and TMPDIR is /tmp.  Run it as root, as LTP expects.  It is slow (minutes):
``./scripts/test`` does not run it.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LIST = HERE / "ltp-syscalls.txt"
SYSCALLS = Path("testcases/kernel/syscalls")

# LTP's exit status bits (include/tst_res_flags.h)
TFAIL, TBROK, TWARN, TINFO, TCONF = 1, 2, 4, 16, 32
RESULTS = ("pass", "TFAIL", "TBROK", "TCONF", "timeout", "crash", "missing")


@dataclass
class Test:
    name: str
    argv: list[str]
    dir: str = ""
    results: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def read_list(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


def runtest_commands(ltp: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (ltp / "runtest" / "syscalls").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, cmd = line.split(None, 1)
        out[name] = shlex.split(cmd)
    return out


def binary_dirs(ltp: Path) -> dict[str, str]:
    """LTP binary (source) name -> its directory below testcases/kernel/syscalls."""
    out: dict[str, str] = {}
    root = ltp / SYSCALLS
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        for src in d.rglob("*.c"):
            out.setdefault(src.stem, str(src.parent.relative_to(root)))
    return out


def classify(rc: int | None, out: str) -> str:
    if rc is None:
        return "timeout"
    if rc < 0 or rc >= 128:
        return "crash"
    if rc == 0:
        return "pass"
    if rc & TBROK:
        return "TBROK"
    if rc & TFAIL:
        return "TFAIL"
    if rc & TCONF:
        return "TCONF"
    if rc & TWARN:
        return "pass"             # warnings only
    return "TBROK"


def _run(argv: list[str], env: dict[str, str], cwd: str, timeout: float) -> tuple[int | None, str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)     # the test and everything it started
        out, _ = proc.communicate()
        return None, out.decode(errors="replace")


def run_native(t: Test, ltp: Path, timeout: float) -> tuple[str, str]:
    bindir = ltp / SYSCALLS / t.dir
    exe = bindir / t.argv[0]
    if not exe.exists():
        return "missing", f"{exe} not built"
    tmp = tempfile.mkdtemp(dir="/dev/shm", prefix="ltp-")
    try:
        env = _env(str(bindir), str(ltp), tmp)
        rc, out = _run([str(exe), *t.argv[1:]], env, tmp, timeout)
    finally:
        _clean_native(tmp)
    return classify(rc, out), out


def _clean_native(tmp: str) -> None:
    """A test killed at its timeout leaves what its cleanup would have undone:
    mounts below its directory and their loop devices."""
    try:
        with open("/proc/mounts") as f:
            mounts = [line.split() for line in f]
    except OSError:
        mounts = []
    for fields in sorted(mounts, key=lambda m: -len(m[1])):
        if fields[1].startswith(tmp + "/"):
            subprocess.run(["umount", "-l", fields[1]], stderr=subprocess.DEVNULL)
            if fields[0].startswith("/dev/loop"):
                subprocess.run(["losetup", "-d", fields[0]], stderr=subprocess.DEVNULL)
    shutil.rmtree(tmp, ignore_errors=True)


def run_xinim(t: Test, ltp: Path, timeout: float, xinim_run: str) -> tuple[str, str]:
    exe = ltp / SYSCALLS / t.dir / t.argv[0]
    if not exe.exists():
        return "missing", f"{exe} not built"
    bindir = f"/ltp/{SYSCALLS}/{t.dir}"
    env = dict(os.environ)
    env.pop("XINIM_SOCKET", None)
    inner = _env(bindir, "/ltp", "/tmp")
    argv = [xinim_run, "--bind", f"{ltp}:/ltp:ro", "/usr/bin/env", "-i",
            *(f"{k}={v}" for k, v in inner.items()), f"{bindir}/{t.argv[0]}", *t.argv[1:]]
    rc, out = _run(argv, env, "/", timeout)
    return classify(rc, out), out


def _env(bindir: str, ltproot: str, tmp: str) -> dict[str, str]:
    return {"PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LTPROOT": ltproot, "TMPDIR": tmp, "LC_ALL": "C", "HOME": "/root",
            "LTP_COLORIZE_OUTPUT": "0", "TERM": "dumb"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tests", nargs="*", help="runtest names (default: the whole list)")
    ap.add_argument("--ltp", type=Path, default=Path("/tmp/ltp"), help="built LTP source tree")
    ap.add_argument("--list", type=Path, default=LIST)
    ap.add_argument("-j", "--jobs", type=int, default=1, help="tests at once (default 1)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per test and side")
    ap.add_argument("--only", choices=("native", "xinim"), help="run one side only")
    ap.add_argument("--xinim-run", default=str(Path(sys.executable).with_name("xinim-run")))
    ap.add_argument("--json", type=Path, help="write every result and output here")
    ap.add_argument("--dirs", action="store_true", help="print the directories to build")
    ap.add_argument("-v", "--verbose", action="store_true", help="print output of differences")
    args = ap.parse_args(argv)

    names = args.tests or read_list(args.list)
    if args.dirs:
        cmds, where = runtest_commands(args.ltp), binary_dirs(args.ltp)
        print("\n".join(sorted({where.get(cmds[n][0], "?").split("/")[0]
                                for n in names if n in cmds})))
        return 0
    if not (args.ltp / "runtest" / "syscalls").exists():
        ap.error(f"{args.ltp}: no LTP tree (see the module docstring to fetch and build one)")
    if args.only != "native" and not shutil.which(args.xinim_run):
        ap.error(f"no xinim-run at {args.xinim_run}")
    cmds, where = runtest_commands(args.ltp), binary_dirs(args.ltp)
    tests = []
    for n in names:
        if n not in cmds:
            print(f"{n}: not in runtest/syscalls", file=sys.stderr)
            continue
        tests.append(Test(n, cmds[n], where.get(cmds[n][0], "")))
    sides = [s for s in ("native", "xinim") if args.only in (None, s)]

    def one(t: Test) -> Test:
        for side in sides:
            start = time.monotonic()
            try:
                if side == "native":
                    res, out = run_native(t, args.ltp, args.timeout)
                else:
                    res, out = run_xinim(t, args.ltp, args.timeout, args.xinim_run)
            except Exception as exc:            # the harness's own trouble: the row says so
                res, out = "crash", f"harness: {exc!r}"
            t.results[side] = res
            t.notes[side] = out[-4000:]
            t.notes[side + "_s"] = f"{time.monotonic() - start:.1f}"
        print(f"{t.name:24} " + " ".join(f"{t.results[s]:8}" for s in sides), flush=True)
        return t

    print(f"{'test':24} " + " ".join(f"{s:8}" for s in sides), flush=True)
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        done = list(pool.map(one, tests))
    print()
    print(f"{'':10}" + "".join(f"{r:>9}" for r in RESULTS))
    for s in sides:
        counts = {r: sum(1 for t in done if t.results.get(s) == r) for r in RESULTS}
        print(f"{s:10}" + "".join(f"{counts[r]:>9}" for r in RESULTS) + f"   of {len(done)}")
    if len(sides) == 2:
        lost = [t for t in done if t.results["native"] == "pass" and t.results["xinim"] != "pass"]
        print(f"\npass natively, not under XINIM: {len(lost)}")
        for t in lost:
            print(f"  {t.name:24} {t.results['xinim']}")
            if args.verbose:
                tail = [ln for ln in t.notes["xinim"].splitlines()
                        if any(k in ln for k in ("TFAIL", "TBROK", "TCONF", "xinim:"))][:6]
                for ln in tail:
                    print(f"      {ln[:150]}")
    if args.json:
        args.json.write_text(json.dumps([t.__dict__ for t in done], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
