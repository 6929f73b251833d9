"""execve through PM: VFS's verdict, #! scripts, signal resets, threads, comm."""
from __future__ import annotations

import errno

from support.pm import SIGCHLD, SIGINT, SIGTERM, SIGUSR1, running_pm

from xinim_host.lib import protocol as p
from xinim_host.pm.notify import ExecTarget


def exe(host: bytes = b"", **kw: object) -> ExecTarget:
    return ExecTarget(host_path=host, **kw)  # type: ignore[arg-type]


async def test_exec_resets_caught_handlers_and_keeps_ignored() -> None:
    async with running_pm() as h:
        h.servers.files[b"/bin/echo"] = exe(b"/usr/bin/echo", dev=1, ino=2)
        pid = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSigaction(caller=pid, sig=SIGTERM, handler=0x4000, flags=0x10000000))
        await h.ok(p.ProcSigaction(caller=pid, sig=SIGINT, handler=1))            # SIG_IGN
        await h.ok(p.ProcSigprocmask(caller=pid, how=p.SIG_BLOCK, mask=1 << (SIGUSR1 - 1)))
        r = await h.ok(p.ProcExec(caller=pid, path=b"/bin/echo", argv=b"echo\0hello",
                                  envp=b"PATH=/bin"))
        assert (r.host_path, r.path, r.argv, r.dev, r.ino) == \
            (b"/usr/bin/echo", b"/bin/echo", b"echo\0hello", 1, 2)
        assert (await h.ok(p.ProcSigaction(caller=pid, sig=SIGTERM, set=0))).handler == 0
        assert (await h.ok(p.ProcSigaction(caller=pid, sig=SIGINT, set=0))).handler == 1
        # the mask survives exec (POSIX)
        assert (await h.ok(p.ProcSigprocmask(caller=pid, how=0, set=0))).mask == 1 << 9
        assert h.pcb(pid).command == "echo" and h.pcb(pid).did_exec
        assert ("exec", pid) in h.servers.calls


async def test_exec_errors_come_from_vfs_and_change_nothing() -> None:
    async with running_pm() as h:
        pid = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSigaction(caller=pid, sig=SIGTERM, handler=0x4000))
        h.servers.files[b"/etc/passwd"] = errno.EACCES
        h.servers.files[b"/bin"] = errno.EACCES
        h.servers.files[b"/bin/ls/x"] = errno.ENOTDIR
        for path, err in ((b"/nope", errno.ENOENT), (b"/etc/passwd", errno.EACCES),
                          (b"/bin/ls/x", errno.ENOTDIR)):
            assert await h.err(p.ProcExec(caller=pid, path=path, argv=b"x")) == err
        assert (await h.ok(p.ProcSigaction(caller=pid, sig=SIGTERM, set=0))).handler == 0x4000
        assert not h.pcb(pid).did_exec and ("exec", pid) not in h.servers.calls


async def test_exec_of_a_script_runs_its_interpreter() -> None:
    async with running_pm() as h:
        h.servers.files[b"./run.sh"] = exe(script=True, interp=b"/bin/sh", interp_arg=b"-e")
        h.servers.files[b"/bin/sh"] = exe(b"/usr/bin/dash")
        pid = await h.fork(p.INIT_PID)
        r = await h.ok(p.ProcExec(caller=pid, path=b"./run.sh", argv=b"run.sh\0a\0b"))
        assert (r.path, r.host_path) == (b"/bin/sh", b"/usr/bin/dash")
        assert r.argv.split(b"\0") == [b"/bin/sh", b"-e", b"./run.sh", b"a", b"b"]
        assert h.pcb(pid).command == "run.sh"          # comm: the file's name, as Linux
        # nested interpreters, up to the limit
        h.servers.files[b"/a"] = exe(script=True, interp=b"/b")
        h.servers.files[b"/b"] = exe(script=True, interp=b"/bin/sh")
        r = await h.ok(p.ProcExec(caller=pid, path=b"/a", argv=b"a\0x"))
        assert r.argv.split(b"\0") == [b"/bin/sh", b"/b", b"/a", b"x"]
        h.servers.files[b"/loop"] = exe(script=True, interp=b"/loop")
        assert await h.err(p.ProcExec(caller=pid, path=b"/loop", argv=b"l")) == errno.ELOOP
        h.servers.files[b"/empty"] = exe(script=True, interp=b"")
        assert await h.err(p.ProcExec(caller=pid, path=b"/empty", argv=b"e")) == errno.ENOEXEC
        h.servers.files[b"/gone"] = exe(script=True, interp=b"/no/such")
        assert await h.err(p.ProcExec(caller=pid, path=b"/gone", argv=b"g")) == errno.ENOENT


async def test_exec_long_name_is_cut_like_linux_comm() -> None:
    async with running_pm() as h:
        path = b"/usr/bin/a-very-long-program-name"
        h.servers.files[path] = exe(path)
        pid = await h.fork(p.INIT_PID)
        await h.ok(p.ProcExec(caller=pid, path=path, argv=b"whatever"))
        assert h.pcb(pid).command == "a-very-long-pro"
        rows = {e.pid: e for e in p.decode_proc_list((await h.ok(p.ProcList(caller=0))).data)}
        assert rows[pid].command == "a-very-long-pro"


async def test_exec_from_a_thread_ends_the_others() -> None:
    async with running_pm() as h:
        h.servers.files[b"/bin/true"] = exe(b"/bin/true")
        pid = await h.fork(p.INIT_PID, host=6000)
        t1 = await h.fork(pid, flags=0x10000 | 0x800 | 0x100, host=6001)
        t2 = await h.fork(pid, flags=0x10000 | 0x800 | 0x100, host=6002)
        await h.ok(p.ProcExec(caller=t2, path=b"/bin/true", argv=b"true"))
        proc = h.pcb(pid)
        assert list(proc.tasks) == [pid]
        assert h.pm.table.tasks.get(t1) is None and h.pm.table.tasks.get(t2) is None
        # the exec'ing thread now is the leader, with the leader's host tid (Linux)
        assert h.pm.tid_of_host(6000) == pid and h.pm.pid_of_host(6002) is None
        assert (await h.ok(p.ProcGettid(caller=pid))).result == pid


async def test_exec_setuid_file_changes_effective_and_saved_ids() -> None:
    async with running_pm() as h:
        h.servers.files[b"/bin/su"] = exe(b"/bin/su", mode=0o104755, uid=0, gid=0)
        h.servers.files[b"/bin/id"] = exe(b"/bin/id", mode=0o100755, uid=0)
        pid = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSetresuid(caller=pid, ruid=1000, euid=1000, suid=1000))
        await h.ok(p.ProcExec(caller=pid, path=b"/bin/id", argv=b"id"))
        r = await h.ok(p.ProcGetresuid(caller=pid))
        assert (r.real, r.effective, r.saved) == (1000, 1000, 1000)
        await h.ok(p.ProcExec(caller=pid, path=b"/bin/su", argv=b"su"))
        r = await h.ok(p.ProcGetresuid(caller=pid))
        assert (r.real, r.effective, r.saved) == (1000, 0, 0)
        assert ("setids", pid, 1000, 0, 0, 0) in h.servers.calls


async def test_exec_e2big_when_the_new_argv_does_not_fit() -> None:
    async with running_pm() as h:
        h.servers.files[b"/s"] = exe(script=True, interp=b"/bin/sh")
        h.servers.files[b"/bin/sh"] = exe(b"/bin/sh")
        pid = await h.fork(p.INIT_PID)
        argv = b"s\0" + b"x" * (p.DATA_MAX - 2)
        assert await h.err(p.ProcExec(caller=pid, path=b"/s", argv=argv)) == errno.E2BIG


async def test_sigchld_ignored_stays_ignored_across_exec() -> None:
    async with running_pm() as h:
        h.servers.files[b"/bin/x"] = exe(b"/bin/x")
        pid = await h.fork(p.INIT_PID)
        await h.ok(p.ProcSigaction(caller=pid, sig=SIGCHLD, handler=1, flags=2))
        await h.ok(p.ProcExec(caller=pid, path=b"/bin/x", argv=b"x"))
        r = await h.ok(p.ProcSigaction(caller=pid, sig=SIGCHLD, set=0))
        assert (r.handler, r.flags) == (1, 0)
