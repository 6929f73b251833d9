"""python3 -c pass under XINIM: wall time of xinim-run, and per-program time in one booted system."""
import os, statistics, subprocess, sys, time
import trio
from xinim_host.cli.launch import run_program
from xinim_host.kernel.boot import BootConfig, booted

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10
argv = sys.argv[2:] or ["/usr/bin/python3", "-c", "pass"]

class Null:
    def write(self, d): return len(d)
    async def read(self, n): await trio.lowlevel.checkpoint(); return b""
    def tty_fd(self): return None
    def ioctl(self, r, a):
        from xinim_host.kernel.errors import SysError; raise SysError(25)

async def inproc():
    times = []
    async with booted(BootConfig(console=Null(), quiet=True)) as system:
        for i in range(N + 1):
            t = time.perf_counter()
            code = await run_program(system, argv, {"PATH": "/usr/bin:/bin"})
            assert code == 0, code
            if i: times.append(time.perf_counter() - t)
    return times

t = trio.run(inproc)
print(f"in-process {' '.join(argv)}: median {statistics.median(t)*1000:.1f} ms, min {min(t)*1000:.1f} ms")
xr = os.path.join(os.path.dirname(sys.executable), "xinim-run")
w = []
for i in range(N):
    t0 = time.perf_counter(); subprocess.run([xr, *argv], check=True); w.append(time.perf_counter() - t0)
print(f"xinim-run wall: median {statistics.median(w)*1000:.1f} ms, min {min(w)*1000:.1f} ms")
n = []
for i in range(N):
    t0 = time.perf_counter(); subprocess.run(argv, check=True); n.append(time.perf_counter() - t0)
print(f"native: median {statistics.median(n)*1000:.1f} ms")
