"""Start a real program as a XINIM process of a booted system.

Shared by ``xinim-run`` and ``xinim-boot --init``: resolve the program in XINIM's
namespace (PATH search as a shell does, through the VFS), run it under the
interceptor with the router as its event handler, and map its end to an exit
code (128+N when killed by signal N).
"""
from __future__ import annotations

import errno
import logging
import os
import posixpath
import stat
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Generator, Mapping, Sequence

import trio

from ..kernel import renumber
from ..kernel.calls.base import Op, Sendrec
from ..kernel.calls.procs import ramfs_image
from ..kernel.trap import SyscallRouter
from ..intercept.tracer import Tracer
from ..lib import protocol as p
from ..system.boot import System
from ..system.place import start_dir
from ..lib.errors import SysError
from ..lib.linux_abi import AT_FDCWD
from ..pm.exec import MAX_INTERP_DEPTH


if TYPE_CHECKING:
    from ..kernel.trap.trace import Strace

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"


class LaunchError(Exception):
    """The program could not be started; ``exit_code`` is what a shell would give."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Resolved:
    """The program found in XINIM: its XINIM path and what the host kernel execs."""

    xinim_path: bytes
    host_path: str
    memfd: int = -1        # a ramfs program, copied out for the host kernel to exec
    argv: list[bytes] | None = None   # a #! script's: interpreter, its argument, script, args


def _resolver(system: System) -> int:
    """Who looks the program up: init on our own system; on a joined one, our node's
    kernel (the system believes it for itself only, with our host user's rights)."""
    return system.kernel.pid if system.joined_node else p.INIT_PID


async def _exec_open(system: System, path: bytes) -> Any:
    return (await system.lattice.sendrec(system.kernel.pid, p.VFS_PID, p.VfsExecOpen(
        caller=_resolver(system), dirfd=AT_FDCWD, flags=0, path=path))).body


async def resolve_program(system: System, name: str, env: Mapping[str, str],
                          argv: Sequence[str] = ()) -> Resolved:
    """The program's XINIM path and what the host kernel execs for it."""
    candidates = ([name] if "/" in name else
                  [f"{d or '.'}/{name}" for d in env.get("PATH", DEFAULT_PATH).split(":")])
    first_error = errno.ENOENT
    for candidate in candidates:
        path = os.fsencode(candidate)
        reply = await _exec_open(system, path)
        if reply.error == errno.EACCES and "/" in name and await _is_dir(system, path):
            raise LaunchError(f"{name}: Is a directory", 126)     # as a shell says
        if reply.error:
            if reply.error != errno.ENOENT and first_error == errno.ENOENT:
                first_error = reply.error
            continue
        return await _image(system, path, reply, [os.fsencode(a) for a in argv] or [path])
    if "/" not in name and first_error == errno.ENOENT:
        raise LaunchError(f"{name}: command not found", 127)
    raise LaunchError(f"{name}: {os.strerror(first_error)}",
                      127 if first_error == errno.ENOENT else 126)


async def _image(system: System, path: bytes, reply: Any, argv: list[bytes]) -> Resolved:
    """What the host execs for ``path``.  A ``#!`` script's interpreter is found in
    XINIM's namespace too, as the kernel's execve does (PM's exec record follows
    the same chain), and gets Linux's argv: the interpreter, its one argument, the
    script's XINIM path, the rest -- the host never sees a host path for it."""
    exe = path
    script = False
    for _ in range(MAX_INTERP_DEPTH + 1):
        if not reply.script:
            break
        if not reply.interp:
            raise LaunchError(f"{os.fsdecode(path)}: {os.strerror(errno.ENOEXEC)}", 126)
        script = True
        argv = [reply.interp, *([reply.interp_arg] if reply.interp_arg else []), exe, *argv[1:]]
        exe = reply.interp
        reply = await _exec_open(system, exe)
        if reply.error:
            raise LaunchError(f"{os.fsdecode(path)}: {os.fsdecode(exe)}: "
                              f"{os.strerror(reply.error)}",
                              127 if reply.error == errno.ENOENT else 126)
    else:
        raise LaunchError(f"{os.fsdecode(path)}: {os.strerror(errno.ELOOP)}", 126)
    final = argv if script else None
    if reply.host_path:
        return Resolved(path, os.fsdecode(reply.host_path), argv=final)
    memfd = await _copy_out(system, exe)
    return Resolved(path, f"/proc/{os.getpid()}/fd/{memfd}", memfd, argv=final)


async def _is_dir(system: System, path: bytes) -> bool:
    reply = (await system.lattice.sendrec(system.kernel.pid, p.VFS_PID, p.VfsStat(
        caller=_resolver(system), dirfd=AT_FDCWD, flags=0, path=path))).body
    return not reply.error and stat.S_ISDIR(reply.mode)


async def _copy_out(system: System, path: bytes) -> int:
    """A ramfs file's bytes in a memfd: the kernel's own exec copy
    (:func:`~..kernel.calls.procs.ramfs_image`), its messages sent from here."""
    try:
        return await _drive(system, ramfs_image(_resolver(system), path))
    except SysError as exc:
        raise LaunchError(f"{os.fsdecode(path)}: {os.strerror(exc.errno)}", 126) from None


async def _drive(system: System, gen: Generator[Op, Any, int]) -> int:
    """Run a kernel call generator that only asks servers, from the kernel's endpoint.
    A failed send is thrown into it, so its ``finally`` (closing the fd) still runs."""
    answer: Any = None
    failed: BaseException | None = None
    while True:
        try:
            op = gen.throw(failed) if failed is not None else gen.send(answer)
        except StopIteration as stop:
            return stop.value
        failed = None
        assert isinstance(op, Sendrec), op
        try:
            answer = await system.lattice.sendrec(system.kernel.pid, op.dst, op.body)
        except BaseException as exc:
            failed = exc


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


async def run_program(system: System, argv: Sequence[str], env: Mapping[str, str], *,
                      trace: Strace | None = None, tracer: Tracer | None = None,
                      cwd: str = "/", stdio_node: int = 0) -> int:
    """Run ``argv`` as a child of init, starting in XINIM directory ``cwd``;
    returns its exit code.  ``stdio_node``: its fds 0-2 are that joined node's
    terminal (a thin client's)."""
    name = argv[0]
    if "/" in name and not name.startswith("/"):
        name = posixpath.join(cwd, name)       # ./prog: from where it starts
    resolved = await resolve_program(system, name, env, argv)
    router = SyscallRouter(system.kernel, pm=system.pm, trace=trace)
    router.root_image = (resolved.xinim_path, [os.fsencode(a) for a in argv])
    router.root_envc = len(env)
    if cwd != "/":
        router.root_cwd = os.fsencode(cwd)
    if stdio_node:
        router.stdio_node = stdio_node
    elif system.joined_node:
        router.stdio_node = system.lattice.node_id   # our terminal, passed when we joined
    if tracer is None:        # one tracer per system: its runs share the SIGCHLD pump
        tracer = system.tracer = system.tracer or Tracer(handler_errors="enosys",
                                                         cpus=tracer_cpus())
    if tracer.cpus is not None:      # what sched_getaffinity shows instead of the pin
        system.kernel.cpus_pinned = tracer.cpus
        system.kernel.cpus_real = frozenset(os.sched_getaffinity(0))
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        # The program's host fds are never used (every fd call is the VFS's), so
        # its host stdio is /dev/null: nothing can reach our terminal behind XINIM.
        host_argv = [os.fsdecode(a) for a in resolved.argv] if resolved.argv else list(argv)
        status = await tracer.run(host_argv, env, router, executable=resolved.host_path,
                                  allow=renumber.host_run_numbers(),
                                  allow_if_zero=None if trace else renumber.host_run_queries(),
                                  stdio=(devnull, devnull, devnull), cwd="/")
    except OSError as exc:
        raise LaunchError(f"{argv[0]}: {exc.strerror}",
                          127 if exc.errno == errno.ENOENT else 126) from None
    else:
        await router.settle()
    finally:
        os.close(devnull)
        if os.environ.get("XINIM_STATS"):   # bench/syscalls.py's stops-per-syscall row
            print(f"xinim-stats: syscalls {tracer.syscalls} stops {tracer.stops}",
                  file=sys.stderr)
        if resolved.memfd >= 0:
            os.close(resolved.memfd)
        if router.unsupported:
            log.info("unsupported syscalls (answered ENOSYS): %s", ", ".join(
                f"{name} x{n}" if n > 1 else name for name, n in sorted(router.unsupported.items())))
    return exit_code(status)


def tracer_cpus() -> set[int] | None:
    """Where the tracer and its tracees run.  A delegated syscall is a ping-pong
    between tracee and tracer; on one CPU it costs ~5 us, across CPUs ~60 us on
    these VMs, so by default everything shares one CPU (XINIM_PIN=0 turns it off)."""
    if os.environ.get("XINIM_PIN", "1") == "0":
        return None
    return {min(os.sched_getaffinity(0))}


def spawn_for_client(system: System, peer: Any, argv: list[bytes], env: list[bytes],
                     cwd: bytes, done: Callable[..., None]) -> Callable[[], None]:
    """The node socket's ``on_spawn``: run a thin client's program (cli/thin.py) as a
    child of init, its terminal the client's; ``done(code, 0)`` when it exits.
    Only a root client of a system booted by root: the program is then what the
    full join would make it (root, the host user's ids) without the client
    running a kernel and tracer of its own; anyone else joins the full way."""
    if peer.uid != 0 or os.geteuid() != 0:
        raise PermissionError("thin clients: a root client of a root system only")
    scope = trio.CancelScope()
    program = [os.fsdecode(a) for a in argv]
    environ = {}
    for item in env:
        key, sep, value = item.partition(b"=")
        if sep:
            environ[os.fsdecode(key)] = os.fsdecode(value)

    async def run() -> None:
        code, why = 0, b""
        with scope:
            try:
                where = await start_dir(system, p.INIT_PID, None, os.fsdecode(cwd) or None)
                if "PWD" in environ or where != "/":
                    environ["PWD"] = where
                code = await run_program(system, program, environ, cwd=where,
                                         stdio_node=peer.node)
            except LaunchError as exc:
                code, why = exc.exit_code, os.fsencode(str(exc))
            except Exception:
                log.exception("thin client %d: running %s failed", peer.node, program[0])
                code = 126
        if not scope.cancelled_caught:
            done(code, 0, why)

    system.nursery.start_soon(run)
    return scope.cancel

