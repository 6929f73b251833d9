#!/usr/bin/env python3
"""pjdfstest on the FUSE export: POSIX file-system semantics of the ramfs, as the host sees it.

Nothing of pjdfstest is in this repository.  Fetch and build it once in a scratch
directory outside the repository (autoconf, automake, gcc and perl's ``prove``):

    git clone https://github.com/pjd/pjdfstest /tmp/pjdfstest
    cd /tmp/pjdfstest && autoreconf -ifs && ./configure && make pjdfstest

Then, from the repository, as root (pjdfstest chowns, mknods and switches uids):

    python3 conformance/pjdfstest.py                          # all of tests/, both sides
    python3 conformance/pjdfstest.py chmod rename/09.t        # some directories or files
    python3 conformance/pjdfstest.py --only xinim --json out.json

The XINIM side boots a system with ``xinim-run --mount DIR -o allow_other --keep
/bin/true`` (its ramfs on the host at DIR, a real FUSE mount; allow_other since the
tests run steps as other uids), makes a directory in the ramfs's /tmp and runs
``prove -v -r`` of the tests there (one test file at a time), then unmounts it,
which ends the system.  The native side runs the same prove in a tmpfs directory
(/dev/shm), for comparison.  It prints one row per test file (ok, FAIL n/m,
skipped, dubious), the totals (files, tests, failures) and every failing test with
what pjdfstest tried.  It takes minutes: ``./scripts/test`` does not run it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SIDES = ("native", "xinim")

_HEADER = re.compile(r"^(?P<file>\S+\.t) \.+ ?$")
_PLAN = re.compile(r"^1\.\.(?P<n>\d+)(?:\s*#\s*(?P<skip>.*))?$")
_TAP = re.compile(r"^(?P<not>not )?ok (?P<num>\d+)(?P<rest>.*)$")
_SUMMARY = re.compile(r"^Files=(?P<files>\d+), Tests=(?P<tests>\d+)")


@dataclass
class FileResult:
    """One .t file as prove ran it."""
    name: str
    planned: int = 0
    ran: int = 0
    failed: list[int] = field(default_factory=list)
    todo: list[int] = field(default_factory=list)   # not ok # TODO: known, not a failure
    skipped: str = ""                              # 1..0 # SKIP reason: the whole file
    verdict: str = ""                              # prove's line: ok, Failed 2/9 subtests...
    notes: dict[int, str] = field(default_factory=dict)   # test number -> what was tried

    @property
    def status(self) -> str:
        if self.skipped or self.verdict.startswith("skipped"):
            return "skipped"
        if self.failed:
            return f"FAIL {len(self.failed)}/{self.planned or self.ran}"
        if self.verdict != "ok" or self.ran != self.planned:
            return "dubious"
        return "ok"


def parse_prove(text: str, root: str = "") -> list[FileResult]:
    """The per-file results of ``prove -v`` output (TAP lines under each file's
    header, then prove's verdict line).  ``root`` is cut off the file names."""
    out: list[FileResult] = []
    cur: FileResult | None = None
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            name = m["file"]
            if root and name.startswith(root):
                name = name[len(root):].lstrip("/")
            cur = FileResult(name)
            out.append(cur)
            continue
        if cur is None:
            continue
        if cur.verdict:                 # between files: prove's summary and such
            continue
        m = _PLAN.match(line)
        if m:
            cur.planned = int(m["n"])
            if cur.planned == 0 and m["skip"]:
                cur.skipped = re.sub(r"(?i)^skip\s*", "", m["skip"]).strip() or "skip"
            continue
        m = _TAP.match(line)
        if m:
            num, rest = int(m["num"]), m["rest"]
            cur.ran += 1
            if m["not"]:
                if re.search(r"#\s*TODO", rest, re.I):
                    cur.todo.append(num)
                else:
                    cur.failed.append(num)
                    cur.notes[num] = rest.lstrip(" -")
            continue
        s = line.strip()
        if s == "ok" or s.startswith(("Failed", "Dubious", "skipped", "No subtests",
                                     "Parse errors", "Bad plan")):
            cur.verdict = s
    return out


def short(note: str) -> str:
    """pjdfstest's 32-hex-digit names cut to 6 digits, so expected/got fit a line."""
    return re.sub(r"(pjdfstest_[0-9a-f]{6})[0-9a-f]{26}", r"\1..", note)


def totals(results: list[FileResult]) -> dict[str, int]:
    return {"files": len(results),
            "tests": sum(r.ran for r in results),
            "failures": sum(len(r.failed) for r in results),
            "failed_files": sum(1 for r in results if r.failed),
            "dubious_files": sum(1 for r in results if r.status == "dubious"),
            "skipped_files": sum(1 for r in results if r.status == "skipped")}


def run_prove(tests: list[str], cwd: str, timeout: float) -> tuple[int | None, str]:
    # mkdtemp's 0700 would keep the steps run as other uids (-u 65534) out of
    # the cwd: rename/21.t then fails on any file system.
    os.chmod(cwd, 0o755)
    # One file at a time (no -j): pjdfstest's files share nothing but the cwd.
    proc = subprocess.Popen(["prove", "-v", "-r", *tests], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "LC_ALL": "C"})
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out.decode(errors="replace")


def run_native(tests: list[str], timeout: float) -> tuple[int | None, str]:
    tmp = tempfile.mkdtemp(dir="/dev/shm", prefix="pjdfstest-")
    try:
        return run_prove(tests, tmp, timeout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _mounted(path: str) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


def run_xinim(tests: list[str], timeout: float, xinim_run: str,
              log: str | None) -> tuple[int | None, str]:
    mp = tempfile.mkdtemp(prefix="pjdfstest-mnt-")
    argv = [xinim_run, "--mount", mp, "-o", "allow_other", "--keep"]
    if log:
        argv += ["--log", log]
    env = dict(os.environ)
    env.pop("XINIM_SOCKET", None)
    system = subprocess.Popen([*argv, "/bin/true"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _mounted(mp):         # the harness waits for a process it started
            if system.poll() is not None:
                out = system.stdout.read().decode(errors="replace") if system.stdout else ""
                raise RuntimeError(f"xinim-run exited {system.returncode}: {out.strip()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mp}: not mounted after 60 s")
            time.sleep(0.1)
        work = tempfile.mkdtemp(dir=os.path.join(mp, "tmp"), prefix="pjdfstest-")
        return run_prove(tests, work, timeout)
    finally:
        subprocess.run(["fusermount3", "-u", mp], stderr=subprocess.DEVNULL)
        try:
            system.wait(timeout=30)      # --keep ends once its mount is gone
        except subprocess.TimeoutExpired:
            os.killpg(system.pid, signal.SIGKILL)
            system.wait()
            subprocess.run(["fusermount3", "-uz", mp], stderr=subprocess.DEVNULL)
        try:
            os.rmdir(mp)
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tests", nargs="*",
                    help="directories or .t files below pjdfstest's tests/ (default: all)")
    ap.add_argument("--pjdfstest", type=Path, default=Path("/tmp/pjdfstest"),
                    help="built pjdfstest source tree (default /tmp/pjdfstest)")
    ap.add_argument("--only", choices=SIDES, help="run one side only")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per side")
    ap.add_argument("--xinim-run", default=str(Path(sys.executable).with_name("xinim-run")))
    ap.add_argument("--log", help="XINIM's diagnostics go to this file (xinim-run --log)")
    ap.add_argument("--json", type=Path, help="write every result and prove's output here")
    args = ap.parse_args(argv)

    root = args.pjdfstest.resolve() / "tests"
    if not (args.pjdfstest / "pjdfstest").is_file() or not root.is_dir():
        ap.error(f"{args.pjdfstest}: no built pjdfstest (see the module docstring)")
    if os.geteuid() != 0:
        ap.error("run it as root: pjdfstest changes owners and uids")
    if not shutil.which("prove"):
        ap.error("no prove (perl's Test::Harness)")
    sides = [s for s in SIDES if args.only in (None, s)]
    if "xinim" in sides and not shutil.which(args.xinim_run):
        ap.error(f"no xinim-run at {args.xinim_run}")
    tests = [str(root / t) for t in args.tests] or [str(root)]
    for t in tests:
        if not os.path.exists(t):
            ap.error(f"{t}: no such test file or directory")

    results: dict[str, list[FileResult]] = {}
    raw: dict[str, dict] = {}
    for side in sides:
        start = time.monotonic()
        print(f"{side}: prove -r {' '.join(args.tests) or 'tests/'} ...", file=sys.stderr, flush=True)
        try:
            if side == "native":
                rc, out = run_native(tests, args.timeout)
            else:
                rc, out = run_xinim(tests, args.timeout, args.xinim_run, args.log)
        except Exception as exc:        # the harness's own trouble: the side says so
            rc, out = None, f"harness: {exc!r}"
        results[side] = parse_prove(out, str(root))
        raw[side] = {"rc": rc, "seconds": round(time.monotonic() - start, 1),
                     "output": out if args.json else ""}
        if not results[side]:
            print(f"{side}: no results (prove rc {rc}):\n{out[-2000:]}", file=sys.stderr)

    names = sorted({r.name for rs in results.values() for r in rs})
    by = {s: {r.name: r for r in results[s]} for s in sides}
    width = max([len(n) for n in names] + [4])
    print(f"{'file':{width}} " + " ".join(f"{s:14}" for s in sides))
    for n in names:
        print(f"{n:{width}} " + " ".join(
            f"{(by[s][n].status if n in by[s] else 'missing'):14}" for s in sides))
    print()
    print(f"{'':8}" + "".join(f"{k:>15}" for k in totals([])) + "   seconds")
    for s in sides:
        t = totals(results[s])
        print(f"{s:8}" + "".join(f"{v:>15}" for v in t.values()) + f"   {raw[s]['seconds']}")
    for s in sides:
        bad = [r for r in results[s] if r.failed or r.status == "dubious"]
        print(f"\n{s}: failing tests: {sum(len(r.failed) for r in bad)}")
        for r in bad:
            print(f"  {r.name}: {r.status} ({r.verdict})")
            for num in r.failed:
                print(f"      {num}: {short(r.notes.get(num, ''))[:200]}")
    if len(sides) == 2:
        lost = [n for n in names if n in by["native"] and n in by["xinim"]
                and set(by["xinim"][n].failed) - set(by["native"][n].failed)]
        print(f"\nfail under XINIM, not natively: {len(lost)} files")
        for n in lost:
            print(f"  {n}: {sorted(set(by['xinim'][n].failed) - set(by['native'][n].failed))}")
    if args.json:
        args.json.write_text(json.dumps(
            {s: {**raw[s], "totals": totals(results[s]),
                 "files": [r.__dict__ | {"status": r.status} for r in results[s]]}
             for s in sides}, indent=1))
    return 0 if all(totals(results[s])["failures"] == 0 and results[s] for s in sides) else 1


if __name__ == "__main__":
    sys.exit(main())
