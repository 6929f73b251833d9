"""The interceptor's mechanism layer on real programs (tests/c/intercept_prog.c)."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from xinim_host.intercept.actions import Complete, HostRun, Inject, Pending
from xinim_host.intercept.memory import TraceeFault
from xinim_host.intercept.tracee import Tracee
from xinim_host.intercept.tracer import BaseEvents, Tracer

SYS_write, SYS_mmap, SYS_mprotect, SYS_getpid, SYS_getppid = 1, 9, 10, 39, 110
PROT_READ, PROT_WRITE = 1, 2
MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE = 0x02, 0x20, 0x100000
CLONE_VM, CLONE_VFORK, CLONE_THREAD = 0x100, 0x4000, 0x10000
C_DIR = Path(__file__).parent / "c"


@pytest.fixture(scope="session")
def prog(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("intercept") / "intercept_prog"
    subprocess.run(["gcc", "-O2", "-Wall", "-pthread", "-o", str(out), str(C_DIR / "intercept_prog.c")],
                   check=True)
    return str(out)


class Recorder(BaseEvents):
    """Records every event; answers syscalls with ``fn`` (default HostRun)."""

    def __init__(self, fn: Callable[[Tracee, int, tuple[int, ...]], Any] | None = None) -> None:
        self.fn = fn
        self.calls: list[tuple[int, int, int, tuple[int, ...]]] = []
        self.spawns: list[tuple[Tracee, Tracee, int]] = []
        self.spawned_tids: list[int] = []
        self.execs: list[tuple[int, int, int]] = []
        self.exits: list[tuple[int, int]] = []
        self.tgids: set[int] = set()

    def on_syscall(self, t: Tracee, nr: int, args: tuple[int, ...]) -> Any:
        self.calls.append((t.tid, t.tgid, nr, args))
        return self.fn(t, nr, args) if self.fn else HostRun()

    def on_spawn(self, parent: Tracee, child: Tracee, flags: int) -> None:
        self.spawns.append((parent, child, flags))
        self.spawned_tids.append(child.tid)
        self.tgids.add(child.tgid)

    def on_exec(self, t: Tracee, former_tid: int) -> None:
        self.execs.append((t.tid, t.tgid, former_tid))
        self.tgids.add(t.tgid)

    def on_exit(self, t: Tracee, status: int) -> None:
        self.exits.append((t.tid, status))


async def run(tracer: Tracer, argv: list[str], handler: BaseEvents, tmp_path: Path,
              trap: tuple[int, ...] = (SYS_getppid,), **kw: Any) -> tuple[int, str]:
    out = tmp_path / f"out-{time.monotonic_ns()}"
    with open(out, "w+b") as f:  # noqa: ASYNC230 - a local file, opened once
        status = await tracer.run(argv, dict(os.environ), handler, trap=trap,
                                  stdio=(None, f.fileno(), None), **kw)
    return status, out.read_text()


def our_zombies() -> list[int]:
    me = os.getpid()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_bytes()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2:].split()
        if int(rest[1]) == me and rest[0] in (b"Z", b"t", b"T"):
            found.append(int(d))
    return found


def assert_clean(rec: Recorder) -> None:
    for pid in rec.tgids:
        p = Path(f"/proc/{pid}/stat")
        if p.exists():
            state = p.read_bytes().rsplit(b")", 1)[1].split()[0]
            assert state not in (b"Z", b"t", b"T"), f"{pid} left in state {state!r}"
    assert our_zombies() == []


# -- basics -----------------------------------------------------------------------

async def test_complete_getppid(prog: str, tmp_path: Path) -> None:
    rec = Recorder(lambda t, nr, a: Complete(4242))
    tracer = Tracer()
    status, out = await run(tracer, [prog, "getppid", "100"], rec, tmp_path)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert out == "4242\n"
    assert [c[2] for c in rec.calls] == [SYS_getppid] * 100
    assert len(rec.execs) == 1 and rec.execs[0][0] == rec.execs[0][2]
    assert_clean(rec)


async def test_untrapped_true_never_stops(tmp_path: Path) -> None:
    rec = Recorder()
    tracer = Tracer()
    status, _ = await run(tracer, ["/bin/true"], rec, tmp_path, trap=())
    assert status == 0
    assert rec.calls == []
    assert tracer.stops == 2  # the exec event and the death report, nothing else
    assert_clean(rec)


async def test_search_path_and_exec_errors(tmp_path: Path) -> None:
    tracer = Tracer()
    status, _ = await run(tracer, ["true"], Recorder(), tmp_path, trap=())
    assert status == 0
    with pytest.raises(FileNotFoundError):
        await tracer.run(["/nonexistent/prog"], {}, Recorder())
    notexec = tmp_path / "plain.txt"
    notexec.write_text("hi")
    with pytest.raises(PermissionError):
        await tracer.run([str(notexec)], {}, Recorder())
    assert our_zombies() == []


async def test_exit_status_propagated(prog: str, tmp_path: Path) -> None:
    tracer = Tracer()
    status, _ = await run(tracer, [prog, "exit", "3"], Recorder(), tmp_path)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3
    status, _ = await run(tracer, [prog, "segv"], Recorder(), tmp_path)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV


async def test_pending_completed_later(prog: str, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        async def answer_later(t: Tracee) -> None:
            await trio.sleep(0.05)
            seen["parked"] = t.parked
            stat = Path(f"/proc/{t.tid}/stat").read_bytes()
            seen["state"] = stat.rsplit(b")", 1)[1].split()[0]
            assert t.complete(777)

        def fn(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
            nursery.start_soon(answer_later, t)
            return Pending

        rec = Recorder(fn)
        t0 = time.monotonic()
        status, out = await run(Tracer(), [prog, "sleep"], rec, tmp_path)
        elapsed = time.monotonic() - t0
    assert status == 0 and out == "woke 777\n"
    assert seen == {"parked": True, "state": b"t"}  # stopped by the tracer meanwhile
    assert elapsed >= 0.05


async def test_restart_reissues_the_call(prog: str, tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        async def restart_later(t: Tracee) -> None:
            await trio.sleep(0.01)
            assert t.restart()

        def fn(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
            if len(rec.calls) == 1:
                nursery.start_soon(restart_later, t)
                return Pending()
            return Complete(55)

        rec = Recorder(fn)
        _status, out = await run(Tracer(), [prog, "sleep"], rec, tmp_path)
    assert out == "woke 55\n"
    assert len(rec.calls) == 2


async def test_host_run_rewrites_and_on_result(prog: str, tmp_path: Path) -> None:
    def fn(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
        if len(rec.calls) > 1:
            return HostRun()
        return HostRun(args=(a[0], a[1], 3), on_result=lambda t, r: Complete(r * 10))

    rec = Recorder(fn)
    status, out = await run(Tracer(), [prog, "write"], rec, tmp_path, trap=(SYS_write,))
    # the first write is cut to 3 bytes and its result 3 turned into 30
    assert out == "abc\nr=30\n"
    rec = Recorder(lambda t, nr, a: HostRun(nr=SYS_getpid))
    status, out = await run(Tracer(), [prog, "getppid"], rec, tmp_path)
    assert status == 0 and int(out) == rec.calls[0][0]  # getppid ran as getpid on the host

    def keep(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
        return HostRun(on_result=lambda t, r: None)  # None keeps the host's result

    _status, out = await run(Tracer(), [prog, "getppid"], Recorder(keep), tmp_path)
    assert int(out) == os.getpid()


# -- memory -----------------------------------------------------------------------

async def test_tracee_memory(prog: str, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fn(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
        seen["str"] = t.read_cstring(a[0])
        seen["ro"] = t.read(a[1], 9)
        with pytest.raises(TraceeFault) as ei:
            t.read(1, 4)
        seen["errno"] = ei.value.errno
        with pytest.raises(TraceeFault):
            t.write(a[1], b"READ", force=False)  # read-only page, kernel-like
        t.write(a[1], b"READ")  # forced through /proc/PID/mem
        t.write(a[2], b"written\0")
        return Complete(5)

    _status, out = await run(Tracer(), [prog, "mem"], Recorder(fn), tmp_path)
    assert seen == {"str": b"hello tracer", "ro": b"read-only", "errno": errno.EFAULT}
    assert out == "r=5 rw=written ro=READ-only text\n"


async def test_bad_pointer_gives_efault(prog: str, tmp_path: Path) -> None:
    def fn(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
        try:
            t.read_cstring(a[0])
        except OSError as e:
            return Complete(-e.errno)
        return Complete(0)

    _status, out = await run(Tracer(), [prog, "badptr"], Recorder(fn), tmp_path)
    assert out == f"r=-1 errno={errno.EFAULT}\nstill running\n"


# -- processes ----------------------------------------------------------------------

async def test_fork_both_traced(prog: str, tmp_path: Path) -> None:
    rec = Recorder(lambda t, nr, a: Complete(100 + len(rec.calls)))
    status, out = await run(Tracer(), [prog, "fork"], rec, tmp_path)
    assert status == 0
    assert len(rec.spawns) == 1
    parent, child, flags = rec.spawns[0]
    assert flags & 0xFF == signal.SIGCHLD and not flags & CLONE_THREAD
    assert child.tgid == child.tid != parent.tid
    assert {c[1] for c in rec.calls} == {parent.tgid, child.tgid}
    lines = sorted(out.splitlines())
    assert lines[0].startswith("child 10") and lines[1].startswith("parent 10")
    assert lines[1].endswith("status 7")
    assert (child.tid, 7 << 8) in rec.exits
    assert_clean(rec)


async def test_vfork_and_exec(prog: str, tmp_path: Path) -> None:
    rec = Recorder()
    _status, out = await run(Tracer(), [prog, "vfork"], rec, tmp_path)
    assert out == "vfork child status 0\n"
    (_, child, flags), = rec.spawns
    assert flags & CLONE_VFORK and flags & CLONE_VM
    assert [e[0] for e in rec.execs] == [rec.execs[0][0], child.tid]
    assert_clean(rec)


async def test_thread_spawn_and_calls(prog: str, tmp_path: Path) -> None:
    rec = Recorder(lambda t, nr, a: Complete(t.tid))
    _status, out = await run(Tracer(), [prog, "thread"], rec, tmp_path)
    (parent, child, flags), = rec.spawns
    assert flags & CLONE_THREAD and child.tgid == parent.tgid != child.tid
    assert out == f"thread {child.tid}\n"
    assert_clean(rec)


async def test_exec_from_non_leader_thread(prog: str, tmp_path: Path) -> None:
    rec = Recorder()
    status, out = await run(Tracer(), [prog, "exec_thread"], rec, tmp_path)
    assert status == 0 and out == "exec from thread\n"
    (_, thread, _), = rec.spawns
    first, second = rec.execs
    assert second == (first[0], first[0], rec.spawned_tids[0])  # former tid reported
    assert thread.tid == first[0]  # the same Tracee object, now under the tgid
    assert_clean(rec)


async def test_exec_event(prog: str, tmp_path: Path) -> None:
    rec = Recorder()
    _status, out = await run(Tracer(), [prog, "exec", "/bin/echo", "hi"], rec, tmp_path)
    assert out == "hi\n"
    assert len(rec.execs) == 2 and rec.execs[0][0] == rec.execs[1][0] == rec.execs[1][2]


# -- signals ------------------------------------------------------------------------

async def test_signal_reinjected(prog: str, tmp_path: Path) -> None:
    _status, out = await run(Tracer(), [prog, "signal"], Recorder(), tmp_path)
    assert out == "got_usr1=1\n"


async def test_group_stop_and_sigcont(prog: str, tmp_path: Path) -> None:
    rec = Recorder(lambda t, nr, a: Complete(9))
    states = []

    async def cont_later() -> None:
        while not rec.execs:
            await trio.sleep(0.005)
        pid = rec.execs[0][0]
        for _ in range(400):
            st = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            if st in (b"T", b"t"):
                break
            await trio.sleep(0.005)
        await trio.sleep(0.05)
        states.append(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0])
        os.kill(pid, signal.SIGCONT)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(cont_later)
        _status, out = await run(Tracer(), [prog, "stop"], rec, tmp_path)
    assert states and states[0] in (b"T", b"t")  # stayed stopped until SIGCONT
    assert out == "stopping\ncontinued 9\n"


async def test_i386_entry_killed_x32_enosys(prog: str, tmp_path: Path) -> None:
    status, out = await run(Tracer(), [prog, "int80"], Recorder(), tmp_path)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS
    status, out = await run(Tracer(), [prog, "x32"], Recorder(), tmp_path)
    assert out == f"r=-1 errno={errno.ENOSYS}\n"


async def test_signal_during_reexecuted_injection_is_deferred(prog: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal pending while we step the tracee back over its syscall
    instruction is held and re-sent, so the program's handler runs after the
    whole chain with the original registers, exactly once."""
    seen: list[Any] = []
    deferred: list[int] = []
    orig_defer = Tracee._defer_signal
    monkeypatch.setattr(Tracee, "_defer_signal", lambda t, sig: (deferred.append(sig), orig_defer(t, sig)))

    def fn(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
        os.kill(t.tid, signal.SIGUSR1)  # pending while the tracee is parked
        seen.append(signal.SIGUSR1 in t.pending_signals())

        def first(t: Tracee, r: int) -> Any:
            seen.append(r)
            return Inject(SYS_getpid, (), second)  # re-executed: signal comes first

        def second(t: Tracee, r: int) -> Any:
            seen.append(r)
            return Complete(42)

        return Inject(SYS_getpid, (), first)

    rec = Recorder(fn)
    _status, out = await run(Tracer(), [prog, "signal_trap"], rec, tmp_path)
    pid = rec.calls[0][0]
    assert seen == [True, pid, pid]
    assert deferred == [signal.SIGUSR1]
    assert out == "r=42 got_usr1=1\n"


async def test_inject_result_none_parks_until_complete(prog: str, tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        async def later(t: Tracee) -> None:
            await trio.sleep(0.01)
            assert t.parked
            t.write(ADDR, b"parked\0")
            assert t.complete(ADDR)

        def after(t: Tracee, r: int) -> None:
            nursery.start_soon(later, t)
            # stay parked at the exit stop

        def fn(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
            return Inject(SYS_mmap, (ADDR, 4096, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0), after)

        _status, out = await run(Tracer(), [prog, "inject"], Recorder(fn), tmp_path)
    assert out == f"addr={ADDR:#x}\ncontent=parked\n"


# -- injection ------------------------------------------------------------------------

ADDR = 0x5A5A_0000_0000


def _maps_has(tid: int, addr: int) -> str:
    for line in Path(f"/proc/{tid}/maps").read_text().splitlines():
        if line.startswith(f"{addr:x}-"):
            return line
    return ""


async def test_inject_mmap_at_chosen_address(prog: str, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def after_mmap(t: Tracee, r: int) -> Any:
        seen["r"] = r
        seen["maps"] = _maps_has(t.tid, ADDR)
        t.write(ADDR, b"injected\0")
        return Complete(r)

    def fn(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
        return Inject(SYS_mmap, (ADDR, 8192, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0), after_mmap)

    _status, out = await run(Tracer(), [prog, "inject"], Recorder(fn), tmp_path)
    assert seen["r"] == ADDR
    assert seen["maps"].split()[1] == "rw-p"
    assert out == f"addr={ADDR:#x}\ncontent=injected\n"


async def test_inject_chain_from_exit_stop(prog: str, tmp_path: Path) -> None:
    """mmap (at the entry stop), then mprotect and getppid re-executed from
    the exit stop (each traps at seccomp and is let through), then Complete."""
    seen: list[Any] = []

    def fn(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
        def after_mmap(t: Tracee, r: int) -> Any:
            seen.append(("mmap", r, _maps_has(t.tid, ADDR).split()[1]))
            return Inject(SYS_mprotect, (ADDR, 4096, PROT_READ | PROT_WRITE), after_mprotect)

        def after_mprotect(t: Tracee, r: int) -> Any:
            seen.append(("mprotect", r, _maps_has(t.tid, ADDR).split()[1]))
            # getppid is trapped: its re-execution stops at seccomp and is let through
            return Inject(SYS_getppid, (0, 0, 0, 0, 0, 0), after_getppid)

        def after_getppid(t: Tracee, r: int) -> Any:
            seen.append(("getppid", r))
            t.write(ADDR, b"chained\0")
            return Complete(ADDR)

        return Inject(SYS_mmap, (ADDR, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                                 -1, 0), after_mmap)

    rec = Recorder(fn)
    _status, out = await run(Tracer(), [prog, "inject"], rec, tmp_path)
    assert seen == [("mmap", ADDR, "r--p"), ("mprotect", 0, "rw-p"), ("getppid", os.getpid())]
    assert out == f"addr={ADDR:#x}\ncontent=chained\n"
    assert len(rec.calls) == 1  # none of the injected calls reached the handler


async def test_reexecuted_call_that_differs_kills_the_process(prog: str, tmp_path: Path) -> None:
    """A re-executed call is let through only if its trap shows the number,
    arguments and place the tracer set; anything else (here: the tracer's
    expectation altered, as if another thread had rewritten the code) kills the
    process instead of running an unchecked call on the host."""
    def fn(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
        def after_getpid(t: Tracee, r: int) -> Any:
            t.inject(SYS_getppid, (), lambda t, r: Complete(r))
            t._expect = (SYS_getppid, 0, 0, 0, 0, 0, 0, 0)   # not what will trap
            return None
        return Inject(SYS_getpid, (), after_getpid)

    rec = Recorder(fn)
    status, out = await run(Tracer(), [prog, "getppid"], rec, tmp_path)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert out == ""
    assert len(rec.calls) == 1


async def test_inject_then_host_run_original(prog: str, tmp_path: Path) -> None:
    """After an injection the original call can still run on the host."""
    seen: list[int] = []

    def fn(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
        def after(t: Tracee, r: int) -> Any:
            seen.append(r)
            return HostRun()
        return Inject(SYS_getpid, (), after)

    rec = Recorder(fn)
    _status, out = await run(Tracer(), [prog, "getppid"], rec, tmp_path)
    assert seen == [rec.calls[0][0]]
    assert int(out) == os.getpid()
    assert len(rec.calls) == 1


async def test_inject_later_from_pending(prog: str, tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        async def later(t: Tracee) -> None:
            await trio.sleep(0.01)
            t.inject(SYS_mmap, (ADDR, 4096, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0),
                     lambda t, r: (t.write(ADDR, b"later\0"), Complete(r))[1])

        def fn(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
            nursery.start_soon(later, t)
            return Pending

        _status, out = await run(Tracer(), [prog, "inject"], Recorder(fn), tmp_path)
    assert out == f"addr={ADDR:#x}\ncontent=later\n"


# -- lifetime -----------------------------------------------------------------------

async def test_cancel_kills_and_reaps(prog: str, tmp_path: Path) -> None:
    rec = Recorder(lambda t, nr, a: Complete(0) if t.tgid != rec.execs[0][0] else Pending)
    with trio.move_on_after(0.5):
        await run(Tracer(), [prog, "forkbomb", "5"], rec, tmp_path)
    assert len(rec.spawns) == 5
    assert_clean(rec)


async def test_root_exit_kills_rest_unless_wait_all(tmp_path: Path) -> None:
    rec = Recorder()
    t0 = time.monotonic()
    status, _ = await run(Tracer(), ["/bin/sh", "-c", "sleep 5 & exit 4"], rec, tmp_path, trap=())
    assert os.WEXITSTATUS(status) == 4 and time.monotonic() - t0 < 3
    assert_clean(rec)
    rec = Recorder()
    t0 = time.monotonic()
    status, _ = await run(Tracer(), ["/bin/sh", "-c", "sleep 0.3 & exit 4"], rec, tmp_path, trap=(),
                          wait_all=True)
    assert os.WEXITSTATUS(status) == 4 and time.monotonic() - t0 >= 0.3
    assert_clean(rec)


async def test_handler_exception_raised_from_run(prog: str, tmp_path: Path) -> None:
    def boom(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
        raise ValueError("dispatcher bug")

    rec = Recorder(boom)
    with pytest.raises(ValueError, match="dispatcher bug"):
        await run(Tracer(), [prog, "getppid"], rec, tmp_path)
    assert_clean(rec)
    _status, out = await run(Tracer(handler_errors="enosys"), [prog, "getppid"], Recorder(boom), tmp_path)
    assert out == "-1\n"


async def test_concurrent_runs_share_one_pump(prog: str, tmp_path: Path) -> None:
    tracer = Tracer()
    results: dict[int, tuple[int, str]] = {}

    async def one(k: int) -> None:
        results[k] = await run(tracer, [prog, "getppid", "200"], Recorder(lambda t, nr, a: Complete(k)),
                               tmp_path)

    async with trio.open_nursery() as nursery:
        for k in (1, 2, 3):
            nursery.start_soon(one, k)
    assert results == {k: (0, f"{k}\n") for k in (1, 2, 3)}
    assert tracer.tracees == {}


async def test_pinned_cpu(prog: str, tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    seen = []

    def fn(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
        seen.append(os.sched_getaffinity(t.tid))
        return Complete(1)

    _status, _out = await run(Tracer(cpus={cpu}), [prog, "getppid"], Recorder(fn), tmp_path)
    assert seen == [{cpu}]
    assert os.sched_getaffinity(0) == before


async def test_everything_trapped_shell_pipeline(tmp_path: Path) -> None:
    """Every syscall number trapped and host-run: a large filter (long jumps)
    and the fork/exec/wait traffic of a shell pipeline."""
    rec = Recorder()
    status, out = await run(Tracer(), ["/bin/sh", "-c", "echo a; /bin/echo b | /bin/cat"], rec, tmp_path,
                            trap=tuple(range(460)))
    assert status == 0 and out == "a\nb\n"
    assert len(rec.calls) > 50 and len(rec.spawns) >= 2 and len(rec.execs) >= 3
    assert_clean(rec)


PY_THREADS = """
import threading, subprocess, os
out = []
def work(i):
    for _ in range(50):
        os.getppid()
    out.append(i)
ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print(sorted(out), subprocess.run(["/bin/echo", "sub"], capture_output=True).stdout.decode().strip())
"""


async def test_threads_and_subprocess_with_exit_stops(tmp_path: Path) -> None:
    """python3 with threads and a subprocess; every syscall stops at entry and
    exit (HostRun with on_result) and getppid is answered by us."""
    def fn(t: Tracee, nr: int, a: tuple[int, ...]) -> Any:
        if nr == SYS_getppid:
            return Complete(1)
        return HostRun(on_result=lambda t, r: None)

    rec = Recorder(fn)
    status, out = await run(Tracer(), ["/usr/bin/python3", "-c", PY_THREADS], rec, tmp_path,
                            trap=tuple(range(460)))
    assert status == 0, out
    assert out == "[0, 1, 2, 3] sub\n"
    assert sum(1 for c in rec.calls if c[2] == SYS_getppid) >= 200
    assert len({c[0] for c in rec.calls}) >= 5  # threads seen with their own tids
    assert_clean(rec)


async def test_allow_list_traps_everything_else(prog: str, tmp_path: Path) -> None:
    """``allow=``: only the listed numbers run untrapped."""
    rec = Recorder(lambda t, nr, a: Complete(31) if nr == SYS_getppid else HostRun())
    status, out = await run(Tracer(), [prog, "getppid", "3"], rec, tmp_path, allow=(SYS_write,))
    assert status == 0 and out == "31\n"
    nrs = {c[2] for c in rec.calls}
    assert SYS_getppid in nrs and SYS_write not in nrs and len(nrs) > 3


def _subreaper() -> int:
    import ctypes
    flag = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(37, ctypes.byref(flag), 0, 0, 0)
    return flag.value


async def test_process_settings_only_while_running(prog: str, tmp_path: Path) -> None:
    seen = []
    rec = Recorder(lambda t, nr, a: (seen.append(_subreaper()), Complete(0))[1])
    assert _subreaper() == 0
    await run(Tracer(), [prog, "getppid"], rec, tmp_path)
    assert seen == [1] and _subreaper() == 0
