"""What a syscall and a real workload cost under xinim-run, side by side with
native, ``strace -f -o /dev/null`` and Debian's ``proot`` (no seccomp), also
pinned to one CPU (``proot1``, ``strace1``: ``taskset``, as xinim-run pins itself).

    python bench/syscalls.py [--repeat 3] [--quick] [--only NAME,...]
                             [--modes native,strace,strace1,proot,proot1,xinim]
                             [--profile ls|cp|true|getppid|openread|find|mmap|echo|forkexec|python] [--profile-out FILE]
                             [--before REV]

Per-syscall rows come from C loops (bench/c/, compiled at run time) timing
themselves inside the runner: ``getppid`` (one delegated call, served by PM) and
open+read+close (three, served by the VFS); the memory calls: mmap+munmap of
256 KiB and mmap+mremap+munmap (bench/c/mmap_loop.c, MM plus the host), and an
asyncio echo over a socketpair (bench/py/asyncio_echo.py, round trips/s:
higher is better).  Workload rows (``ls -la /usr/bin``; ``find /usr/include
-name '*.h'``, a readdir-heavy walk of a host mount: getdents64, newfstatat and
openat through the VFS and HostFs; shell loops; ...) are timed inside the
runner too, by bench/c/timeit.c (fork, exec, wait), so they leave out the
runner's own start-up, which the ``start-up`` row measures separately as the
wall time of ``/bin/true`` (for xinim-run: the Python process, imports and the
boot of kernel, VFS, PM and MM).  The ``wall`` column is the whole command as
the user waits for it.  Each figure is the median of --repeat runs.

XINIM's files live in its ramfs (/tmp there); the others use a tmpfs dir under
/dev/shm.  The 64 MiB file for ``cp`` is made in the same run, untimed.
``--profile`` runs one workload under xinim-run in cProfile and prints where
the xinim-run process spends its time.  ``--before REV`` adds the mode
``before``: xinim-run of git revision REV (exported to a temporary directory and
run with this Python), measured interleaved with the others, with an x/before
ratio -- before/after figures from one run.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
C_SRC = ROOT / "bench" / "c"
PROGRAMS = ("getppid_loop", "openread_loop", "mmap_loop", "timeit")
PY_SRC = ROOT / "bench" / "py"
XINIM_RUN = str(Path(sys.executable).with_name("xinim-run"))
MODES = ("native", "strace", "proot", "proot1", "xinim")
# proot1/strace1: the same, with tracer and tracees pinned to one CPU (taskset), as
# xinim-run pins itself (XINIM_PIN): on these VMs a ptrace stop that crosses CPUs
# costs several times one that does not, so an unpinned tracer's figures swing with
# the load on the machine (busy: the scheduler keeps them together; idle: it does not).
PIN_CPU = str(min(os.sched_getaffinity(0)))
BIG = 64 << 20
RETRIES = 2          # a failed run is repeated (and reported at the end)
FAILED: list[str] = []
TIMEIT = re.compile(r"^timeit (\d+) (\d+)$", re.M)
STATS = re.compile(r"^xinim-stats: syscalls (\d+) stops (\d+)$", re.M)


@dataclass
class Place:
    """Where a mode finds the bench programs (B) and writes its files (T)."""
    bindir: str
    tmpdir: str

    def fill(self, text: str) -> str:
        return text.replace("{B}", self.bindir).replace("{T}", self.tmpdir)


BEFORE: dict[str, str] = {}     # "dir": the exported older revision (--before)


def runner(mode: str, bindir: Path) -> list[str]:
    if mode == "native":
        return []
    if mode == "before":
        return [sys.executable, "-m", "xinim_host.cli.run", "--bind", f"{bindir}:/b"]
    pin = ["taskset", "-c", PIN_CPU] if mode.endswith("1") else []
    if mode.startswith("strace"):
        return pin + ["strace", "-f", "-o", "/dev/null"]
    if mode.startswith("proot"):
        return pin + ["proot"]
    return [XINIM_RUN, "--bind", f"{bindir}:/b"]


def place(mode: str, bindir: Path, shm: Path) -> Place:
    return Place("/b", "/tmp") if mode in ("xinim", "before") else Place(str(bindir), str(shm))


def env(mode: str = "", stats: bool = False) -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE off: xinim-run starts as a user's does, from cached bytecode
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("XINIM_SOCKET") and k != "PYTHONDONTWRITEBYTECODE"}
    e.update(LC_ALL="C", PROOT_NO_SECCOMP="1")
    if stats:
        e["XINIM_STATS"] = "1"
    if mode == "before":
        e["PYTHONPATH"] = BEFORE["dir"]     # ahead of the editable install's finder
    return e


def export_before(rev: str, into: Path) -> None:
    """Revision ``rev`` of this repository's xinim_host, exported under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "xinim_host"],
                             check=True, stdout=subprocess.PIPE).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    BEFORE["dir"] = str(into)


@dataclass
class Outcome:
    wall: float                   # seconds, the whole command
    inner: float | None = None    # seconds, as the program measured itself
    out: str = ""
    stops_per_call: float | None = None   # xinim-run's tracer stops per trapped syscall


class Boots:
    """A running xinim-boot per xinim mode, for the joined start-up row (started
    on first use, stopped at the end)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.procs: dict[str, tuple[subprocess.Popen, str]] = {}

    def socket(self, mode: str) -> str | None:
        if mode in self.procs:
            return self.procs[mode][1]
        sock = str(self.bindir / f"{mode}.sock")
        boot = ([sys.executable, "-m", "xinim_host.cli.boot"] if mode == "before"
                else [str(Path(sys.executable).with_name("xinim-boot"))])
        proc = subprocess.Popen(boot + ["--serial", "pty", "--socket", sock, "--init",
                                        "/bin/sleep", "1000000"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env(mode), cwd="/", start_new_session=True)
        deadline = time.monotonic() + 30
        while not os.path.exists(sock + ".key"):
            if proc.poll() is not None or time.monotonic() > deadline:
                print(f"bench: no xinim-boot for mode {mode}", file=sys.stderr)
                proc.kill()
                self.procs[mode] = (proc, "")
                return None
            time.sleep(0.05)
        time.sleep(0.5)                       # init started
        self.procs[mode] = (proc, sock)
        return sock

    def stop(self) -> None:
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()


BOOTS: list[Boots] = []


def run(mode: str, bindir: Path, shm: Path, argv: list[str], stats: bool = False,
        join: str | None = None) -> Outcome:
    where = place(mode, bindir, shm)
    cmd = runner(mode, bindir) + [where.fill(a) for a in argv]
    if join is not None:            # a joined run: no --bind (the booted system has it)
        cmd = [c for c in cmd if c != "--bind" and not c.endswith(":/b")]
    for attempt in range(RETRIES + 1):
        t0 = time.perf_counter()
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**env(mode, stats), **({"XINIM_SOCKET": join} if join else {})},
                             cwd="/", timeout=600)
        wall = time.perf_counter() - t0
        if res.returncode == 0:
            break
        FAILED.append(f"{mode}: {' '.join(cmd)} -> {res.returncode}: "
                      f"{res.stderr.strip().splitlines()[-1:] }")
        print(f"bench: run failed, {'retrying' if attempt < RETRIES else 'giving up'}: "
              f"{FAILED[-1]}", file=sys.stderr)
    else:
        raise RuntimeError(f"{mode}: {' '.join(cmd)} -> {res.returncode}\n{res.stderr[-2000:]}")
    found = TIMEIT.findall(res.stderr)
    inner = int(found[-1][0]) / 1e9 if found else None
    counted = STATS.findall(res.stderr)
    per_call = int(counted[-1][1]) / int(counted[-1][0]) if counted and int(counted[-1][0]) else None
    return Outcome(wall, inner, res.stdout, per_call)


@dataclass
class Row:
    name: str
    unit: str                                   # "us/call", "us/iter", "ms"
    measure: Callable[[str], float]             # mode -> value (one run)
    note: str = ""
    values: dict[str, float] = field(default_factory=dict)     # median
    best: dict[str, float] = field(default_factory=dict)       # min


def build(bindir: Path) -> None:
    for name in PROGRAMS:
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(bindir / name), str(C_SRC / f"{name}.c")],
                       check=True)
    for script in PY_SRC.glob("*.py"):
        shutil.copy(script, bindir / script.name)


def make_rows(bindir: Path, shm: Path, quick: bool) -> list[Row]:
    n_ppid = 5000 if quick else 20000
    n_open = 1500 if quick else 5000
    n_mmap = 1000 if quick else 3000
    n_echo = 300 if quick else 1000

    def loop_ns(mode: str, argv: list[str], n: int) -> float:
        out = run(mode, bindir, shm, argv).out.split()
        return int(out[0]) / n / 1000        # us per iteration

    def inner(script: str) -> Callable[[str], float]:
        def measure(mode: str) -> float:
            o = run(mode, bindir, shm, ["/bin/sh", "-c", script])
            assert o.inner is not None, "timeit printed nothing"
            return o.inner * 1000
        return measure

    def wall(argv: list[str]) -> Callable[[str], float]:
        return lambda mode: run(mode, bindir, shm, argv).wall * 1000

    def joined(argv: list[str]) -> Callable[[str], float | None]:
        """A run joined to a running xinim-boot (xinim-run and its older revision)."""
        def measure(mode: str) -> float | None:
            if mode not in ("xinim", "before"):
                return None
            sock = BOOTS[0].socket(mode)
            if not sock:
                return None
            return run(mode, bindir, shm, argv, join=sock).wall * 1000
        return measure

    def stops(script: str) -> Callable[[str], float | None]:
        """Tracer stops per trapped syscall (xinim-run and its older revision only:
        strace and PRoot without seccomp stop twice for every syscall)."""
        def measure(mode: str) -> float | None:
            if mode not in ("xinim", "before"):
                return None
            return run(mode, bindir, shm, ["/bin/sh", "-c", script], stats=True).stops_per_call
        return measure

    shell_loop = "i=0; while [ $i -lt 300 ]; do i=$((i+1)); done"
    cmd_loop = "i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done"
    return [
        Row("getppid", "us/call",
            lambda m: loop_ns(m, ["{B}/getppid_loop", str(n_ppid)], n_ppid),
            "1 delegated syscall (PM)"),
        Row("open+read+close", "us/iter",
            lambda m: loop_ns(m, ["{B}/openread_loop", str(n_open), "/etc/passwd"], n_open),
            "3 delegated syscalls (VFS)"),
        Row("mmap+munmap 256 KiB", "us/pair",
            lambda m: loop_ns(m, ["{B}/mmap_loop", str(n_mmap)], n_mmap),
            "2 memory calls (MM + host)"),
        Row("mmap+mremap+munmap", "us/iter",
            lambda m: loop_ns(m, ["{B}/mmap_loop", str(n_mmap), "remap"], n_mmap),
            "256 KiB grown to 512 KiB"),
        Row("asyncio echo", "rt/s",
            lambda m: 1e6 / loop_ns(m, ["/usr/bin/python3", "{B}/asyncio_echo.py",
                                        str(n_echo)], n_echo),
            "socketpair round trips/s: higher is better"),
        Row("start-up (/bin/true)", "ms", wall(["/bin/true"]), "fixed cost, wall"),
        Row("start-up --join", "ms", joined(["/bin/true"]), "to a running xinim-boot, wall"),
        Row("ls -la /usr/bin", "ms", inner("exec {B}/timeit /bin/ls -la /usr/bin > /dev/null"),
            "~3300 syscalls"),
        Row("ls -la /usr/bin (wall)", "ms", wall(["/bin/ls", "-la", "/usr/bin"]),
            "incl. start-up"),
        Row("find /usr/include", "ms",
            inner("exec {B}/timeit /usr/bin/find /usr/include -name '*.h' > /dev/null"),
            "readdir-heavy: getdents64, newfstatat, openat"),
        Row("sh loop x300", "ms", inner(f"exec {{B}}/timeit /bin/sh -c '{shell_loop}'"),
            "builtins only"),
        Row("sh loop x300 /bin/true", "ms", inner(f"exec {{B}}/timeit /bin/sh -c '{cmd_loop}'"),
            "300 fork+exec+wait"),
        Row("python3 -c pass", "ms", inner("exec {B}/timeit /usr/bin/python3 -c pass"), ""),
        Row("stops/syscall: ls", "stops", stops("/bin/ls -la /usr/bin > /dev/null"),
            "tracer stops per trapped call"),
        Row("stops/syscall: fork+exec", "stops", stops(cmd_loop),
            "the 300 fork+exec+wait loop"),
        Row("cp 64 MiB", "ms",
            inner(f"head -c {BIG} /dev/zero > {{T}}/big && {{B}}/timeit /bin/cp {{T}}/big {{T}}/big2"
                  " && rm -f {T}/big {T}/big2"),
            "file made first, untimed"),
    ]


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def report(rows: list[Row], modes: list[str]) -> str:
    head = f"{'':<24} {'unit':<8}" + "".join(f"{m:>10}" for m in modes)
    head += f"{'x/native':>10}{'x/proot':>9}{'x/proot1':>9}{'proot/nat':>10}"
    if "before" in modes:
        head += f"{'x/before':>9}"
    head += "  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        v = r.values
        line = f"{r.name:<24} {r.unit:<8}" + "".join(f"{fmt(v.get(m)):>10}" for m in modes)
        line += (f"{ratio(v.get('xinim'), v.get('native')):>10}"
                 f"{ratio(v.get('xinim'), v.get('proot')):>9}"
                 f"{ratio(v.get('xinim'), v.get('proot1')):>9}"
                 f"{ratio(v.get('proot'), v.get('native')):>10}")
        if "before" in modes:
            line += f"{ratio(v.get('xinim'), v.get('before')):>9}"
        line += f"  {r.note}"
        lines.append(line)
    return "\n".join(lines)


def profile(what: str, bindir: Path, out: str) -> None:
    import pstats
    scripts = {
        "ls": ["/bin/ls", "-la", "/usr/bin"],
        "cp": ["/bin/sh", "-c", f"head -c {BIG} /dev/zero > /tmp/big && cp /tmp/big /tmp/big2"],
        "true": ["/bin/true"],
        "getppid": ["/b/getppid_loop", "20000"],
        "openread": ["/b/openread_loop", "5000", "/etc/passwd"],
        "find": ["/usr/bin/find", "/usr/include", "-name", "*.h"],
        "mmap": ["/b/mmap_loop", "3000"],
        "echo": ["/usr/bin/python3", "/b/asyncio_echo.py", "2000"],
        "forkexec": ["/bin/sh", "-c", "i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done"],
        "python": ["/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do /usr/bin/python3 -c pass; done"],
    }
    cmd = [sys.executable, "-m", "cProfile", "-o", out, "-m", "xinim_host.cli.run",
           "--bind", f"{bindir}:/b", *scripts[what]]
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, env=env(), cwd=str(ROOT))
    print(f"profiled {what}: {time.perf_counter() - t0:.2f} s wall (with cProfile), "
          f"stats in {out}\n")
    stats = pstats.Stats(out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="shorter loops")
    ap.add_argument("--only", help="comma-separated row names (prefix match)")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--profile", choices=("ls", "cp", "true", "getppid", "openread", "find",
                                          "mmap", "echo", "forkexec", "python"))
    ap.add_argument("--profile-out", default="/tmp/xinim-bench.prof")
    ap.add_argument("--before", metavar="REV",
                    help="also run xinim-run of git revision REV (mode 'before')")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if args.before and "before" not in modes:
        modes.append("before")
    for tool in ("gcc", "strace", "proot", "taskset"):
        if shutil.which(tool) is None and (tool == "gcc" or any(m.startswith(tool) for m in modes)
                                           or tool == "taskset" and any(m.endswith("1") for m in modes)):
            print(f"bench: {tool} not installed", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="xinim-bench-") as bd, \
            tempfile.TemporaryDirectory(prefix="xinim-bench-", dir="/dev/shm") as shm:
        bindir = Path(bd)
        os.chmod(bindir, 0o755)
        if "before" in modes:
            if not args.before:
                print("bench: mode 'before' needs --before REV", file=sys.stderr)
                return 2
            old = bindir / "before"
            old.mkdir()
            export_before(args.before, old)
        build(bindir)
        if args.profile:
            profile(args.profile, bindir, args.profile_out)
            return 0
        rows = make_rows(bindir, Path(shm), args.quick)
        BOOTS.append(Boots(bindir))
        if args.only:
            wanted = [w.strip() for w in args.only.split(",")]
            rows = [r for r in rows if any(r.name.startswith(w) for w in wanted)]
        cpus = os.cpu_count()
        print(f"# {cpus} CPUs, load {os.getloadavg()[0]:.2f}; median of {args.repeat}; "
              f"XINIM_PIN={os.environ.get('XINIM_PIN', '1')}", flush=True)
        for r in rows:
            # modes interleaved, so a burst of load elsewhere hits all of them alike
            samples: dict[str, list[float]] = {m: [] for m in modes}
            for _ in range(args.repeat):
                for m in modes:
                    samples[m].append(r.measure(m))
            for m in modes:
                got = [v for v in samples[m] if v is not None]
                if got:
                    r.values[m] = statistics.median(got)
                    r.best[m] = min(got)
            print(f"  {r.name}: " + ", ".join(
                f"{m} {fmt(r.values[m])} (min {fmt(r.best[m])})" for m in modes if m in r.values),
                file=sys.stderr, flush=True)
        BOOTS[0].stop()
        print(report(rows, modes))
        if FAILED:
            print(f"# {len(FAILED)} failed run(s), repeated:")
            for line in FAILED:
                print(f"#   {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
