"""The boot sequence (plan §7.2): kernel, VFS (2), PM (3), MM (4), NET, channels, init (1).

``booted()`` is an async context manager: inside it the system runs as trio tasks
under one nursery; leaving it (or cancelling) stops every task and closes every
endpoint and socket, so nothing is left running.
"""
from __future__ import annotations

import errno
import logging
import os
import time
from functools import partial
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import trio

from ..lib import protocol as p
from ..uart.terminal import FdConsole
from ..kernel.calls.base import SyscallContext
from ..lib.ipc import DEFAULT_NODE_ID, Lattice, NodePeer
from ..kernel.kernel import Kernel
from ..lib.syscalls import Sys
from ..lib.usermem import FlatMemory

log = logging.getLogger(__name__)

SERVER_PIDS = (p.VFS_PID, p.PM_PID, p.MM_PID, p.NET_PID)


@dataclass
class BootConfig:
    """What a boot is given: consoles, mounts, node id, node socket, ramfs."""

    console: Any = None                      # write/read/ioctl; default: this process's stdio
                                             # (optional: kernel_sink, async start(system))
    console_err: Any = None                  # init's fd 2, when not the console itself
    mounts: list[tuple[str, str, str]] | None = None   # (host, xinim, "ro"|"rw"); None: defaults
    node_id: int = DEFAULT_NODE_ID
    socket_path: str | None = None           # serve other nodes (xinim-run clients) here
    allow_uids: tuple[int, ...] = ()         # host users besides ours who may join
    quiet: bool = False                      # the boot log to the log, not the console
    ramfs: Any = None                        # a tree loaded from an image; None: a fresh one
    # on_spawn(system, peer, argv, env, cwd, done) -> cancel: run programs for thin
    # clients on the node socket (cli/launch.py: spawn_for_client); None: refuse
    on_spawn: Any = None


@dataclass
class System:
    """A booted system: its lattice, kernel, servers, console and nursery."""

    config: BootConfig
    lattice: Lattice
    kernel: Kernel
    vfs: Any
    pm: Any
    mm: Any
    console: Any
    nursery: trio.Nursery
    joined_node: int = 0      # a joined client's view: the node whose servers it uses
    net: Any = None           # NET (sockets), when this process runs it
    tracer: Any = None        # the one tracer of this system's programs (made on first use)
    started: float = field(default_factory=time.time)   # the boot log's time 0

    def log(self, line: str) -> None:
        """A boot-log line, ``[seconds since boot] who: what`` like a kernel log,
        through the kernel's debug_write path to the console (``quiet``: to the
        diagnostics log instead)."""
        if self.config.quiet:
            log.info("%s", line)
            return
        self.kernel.console.write(f"[{time.time() - self.started:9.3f}] {line}\n".encode())


@asynccontextmanager
async def booted(config: BootConfig | None = None) -> AsyncIterator[System]:
    from ..mm.server import MmServer
    from ..lib.hostsig import sigqueue
    from ..pm.server import PmServer
    from ..vfs_fuse.server import VfsServer

    config = config or BootConfig()
    console = config.console or FdConsole()
    lattice = Lattice(config.node_id)
    # debug_write and the boot log: a console may give the kernel its own way out (the
    # UART console: straight to the driver, beside the line discipline, like printk).
    kernel = Kernel(lattice, getattr(console, "kernel_sink", None) or console)
    vfs_kwargs: dict[str, Any] = {"console": console, "console_err": config.console_err}
    if config.mounts is not None:
        vfs_kwargs["mounts"] = config.mounts
    if config.ramfs is not None:
        vfs_kwargs["ramfs"] = config.ramfs
    try:
        async with trio.open_nursery() as nursery:
            kernel.nursery = nursery
            vfs = VfsServer(lattice, **vfs_kwargs)
            # Signals for tasks no local interceptor claims (those of joined nodes)
            # still reach them: every node runs on this host.
            pm = PmServer(lattice, signal_host=os.kill, queue_host=sigqueue)
            mm = MmServer(lattice)
            system = System(config, lattice, kernel, vfs, pm, mm, console, nursery)
            system.log(f"kernel: XINIM hosted kernel, node {config.node_id}")
            for server in (vfs, pm, mm):
                await nursery.start(server.serve)
                system.log(f"{type(server).__name__.removesuffix('Server').upper()}: "
                           f"started on PID {server.pid}")
            # Kernel <-> every server, and the servers among themselves (PM tells VFS
            # and MM about forks and exits, MM reads files through VFS).
            for pid in SERVER_PIDS:
                if pid != p.NET_PID:
                    lattice.connect_local(p.KERNEL_PID, pid)
            lattice.connect_local(p.PM_PID, p.VFS_PID)
            lattice.connect_local(p.PM_PID, p.MM_PID)
            lattice.connect_local(p.MM_PID, p.VFS_PID)
            # NET starts on first use -- the first message to it, or a joined node's
            # channel to it (lib/ipc.py on_demand): most programs open no socket, and
            # its import and start were ~5 ms of every run.  Until then PM has no
            # channel to it and tells it of no exit (it has no socket of anyone).
            lattice.on_demand[p.NET_PID] = partial(_start_net, system)
            if config.socket_path:
                from ..lib.transport import serve_socket
                from ..pm.forkexit import node_gone
                from ..vfs_fuse.handlers_node import attach_node_console, node_joined, node_left

                def joined(peer: NodePeer) -> None:
                    node_joined(vfs, peer)

                def left(peer: NodePeer) -> None:   # its processes die, then its VFS side
                    node_gone(pm, peer.node)
                    node_left(vfs, peer)

                await nursery.start(partial(serve_socket, lattice, config.socket_path,
                                            on_stdio=partial(attach_node_console, vfs),
                                            on_join=joined, on_leave=left,
                                            allow_uids=config.allow_uids,
                                            on_spawn=partial(config.on_spawn, system)
                                            if config.on_spawn else None))
                system.log(f"kernel: node socket {config.socket_path}")
            start_console = getattr(console, "start", None)
            if start_console is not None:   # its pumps; ^C & co. go to PM as the kernel
                await nursery.start(start_console, system)
            await nursery.start(run_init, system)
            system.log("init: started on PID 1")
            try:
                yield system
            finally:
                nursery.cancel_scope.cancel()
    finally:
        lattice.on_demand.clear()       # nothing starts once the system is gone
        for pid in list(lattice.endpoints):
            lattice.close(pid)


def _start_net(system: System) -> None:
    from ..net.server import NetServer

    lattice = system.lattice
    net = system.net = NetServer(lattice)
    # Its messages wait in its queue until its receive loop (and its nursery) runs:
    # no direct dispatch before that.
    net.endpoint.handler = None
    lattice.connect_local(p.KERNEL_PID, p.NET_PID)
    lattice.connect_local(p.PM_PID, p.NET_PID)     # signals and exits of its callers
    lattice.connect_local(p.VFS_PID, p.NET_PID)    # read/write/close; readiness back
    # in a nursery of its own: its failure is logged, never takes the others down
    system.nursery.start_soon(partial(_serve_isolated, net, task_status=_DirectOnceServing(net)))
    system.log(f"NET: started on PID {net.pid} (first use)")


class _DirectOnceServing:
    """A task status whose ``started`` (the server's loop is running) turns on direct
    dispatch to the server."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def started(self, value: Any = None) -> None:
        if not self.server.endpoint.closed:
            self.server.endpoint.handler = self.server.handle


async def _serve_isolated(server: Any, *,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Run a server whose crash must not end the system: logged, endpoint closed (its
    callers then get EPIPE), the rest goes on."""
    started = False
    try:
        await server.serve(task_status=task_status)
        started = True
    except Exception:
        log.exception("%s crashed; the system goes on without it", type(server).__name__)
    finally:
        if not started:
            try:
                task_status.started()
            except RuntimeError:
                pass
        try:
            server.lattice.close(server.pid)
        except Exception:
            pass
        stop = getattr(server, "stop", None)
        if stop is not None:
            try:
                stop()
            except Exception:
                log.exception("%s: stop failed", type(server).__name__)


async def run_init(system: System, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                   ) -> None:
    """Init (PID 1): reaps whatever children it has or inherits, forever.

    It is a kernel-side task making real wait4 calls through the dispatcher, so it
    is a process like any other to PM (which gives it orphans)."""
    ctx = SyscallContext(pid=p.INIT_PID, args=((-1) & (2**64 - 1), 0, 0, 0, 0, 0),
                         mem=FlatMemory(4096))
    task_status.started()
    while True:
        result = await system.kernel.syscall(Sys.WAIT4, ctx)
        if result > 0:
            log.debug("init reaped %d", result)
            continue
        if result == -errno.ENOSYS:
            log.info("init: PM has no wait4 yet; init idles")
            await trio.sleep_forever()
        # ECHILD: no children now; PM wakes wait4 when it has some, so poll gently
        await trio.sleep(0.05)
