"""Joining a running system from another OS process (another node).

``xinim-run`` with ``XINIM_SOCKET`` (or ``--join``) does not boot servers of its
own: its kernel -- the dispatcher and the interceptor -- runs here, on a node of
its own, and reaches the VFS, PM and MM of the booted node over the node link
(sealed frames on a Unix socket).  Its terminal is handed to the booted node so
the program it starts talks to the terminal that started it.
"""
from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import trio

from ..lib import protocol as p
from .boot import SERVER_PIDS, BootConfig, System
from ..lib.ipc import Lattice
from ..kernel.kernel import Kernel
from ..lib.transport import dial

log = logging.getLogger(__name__)


@asynccontextmanager
async def joined(socket_path: str, *, console: Any,
                 stdio: tuple[int, int, int] = (0, 1, 2)) -> AsyncIterator[System]:
    """A kernel on a new node, linked to the system serving ``socket_path``.

    The system gives us our node id (and so our kernel's pid) once we proved we
    hold its key (``PATH.key``, readable by the user who booted it)."""
    async with trio.open_nursery() as nursery:
        lattice = Lattice(0)          # our node id comes from the system
        node = await dial(lattice, socket_path, nursery, stdio=stdio)
        kernel = Kernel(lattice, console, pid=p.node_kernel_pid(lattice.node_id))
        if os.geteuid() != 0:
            # PM gives our processes our host ids, not init's: say so locally too
            uid, gid = os.getuid(), os.getgid()
            kernel.set_creds(p.INIT_PID, uid, uid, gid, gid)
        kernel.nursery = nursery
        for pid in SERVER_PIDS:
            await lattice.connect(kernel.pid, pid, node)
        system = System(BootConfig(console=console, node_id=lattice.node_id), lattice, kernel,
                        None, None, None, console, nursery)
        system.joined_node = node
        try:
            yield system
        finally:
            nursery.cancel_scope.cancel()
