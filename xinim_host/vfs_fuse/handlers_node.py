"""Terminals of joined nodes: a ``xinim-run`` that joins a running system passes
its stdin/stdout/stderr over the node link, and its program's fds 0-2 are made
consoles on them -- the program talks to the terminal that started it."""
from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING, Any, Callable

from ..uart.terminal import FdConsole
from ..lib.errors import SysError
from ..lib.linux_abi import AT_FDCWD
from ..lib.protocol import is_kernel
from .devfs_nodes import DeviceAlias
from .devices import ConsoleDevice

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import VfsServer

log = logging.getLogger(__name__)


def attach_node_console(srv: VfsServer, node: int, fds: list[int]) -> Callable[[], None]:
    """Keep node ``node``'s terminal fds (stdin, stdout, stderr) as its consoles;
    the returned function forgets them and closes the fds when the link ends."""
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise SysError(errno.EINVAL, f"node {node} passed {len(fds)} fds, not 3")
    stdin, stdout, stderr = fds
    srv.node_consoles[node] = (ConsoleDevice(FdConsole(out_fd=stdout, in_fd=stdin)),
                               ConsoleDevice(FdConsole(out_fd=stderr, in_fd=stdin)))

    def detach() -> None:
        srv.node_consoles.pop(node, None)
        for fd in fds:
            os.close(fd)

    return detach


def node_joined(srv: VfsServer, peer: Any) -> None:
    """A joined node's kernel is a VFS process of its own -- with its host user's
    ids -- so it can look up the programs it starts (as itself, not as init)."""
    fp = srv.new_proc(peer.kernel_pid)
    fp.uid = fp.euid = peer.uid
    fp.gid = fp.egid = peer.gid


def node_left(srv: VfsServer, peer: Any) -> None:
    if peer.kernel_pid in srv.procs:
        srv.exit_proc(peer.kernel_pid)


def do_node_stdio(srv: VfsServer, req: Request) -> int:
    if not is_kernel(req.msg.m_source):
        raise SysError(errno.EPERM)
    body = req.body
    peer = srv.lattice.peer_of_kernel(req.msg.m_source)
    if peer is not None and (body.node != peer.node
                             or srv.lattice.owners.get(body.pid) != peer.node):
        raise SysError(errno.EPERM)     # a joined node: its own terminal, its own process
    consoles = srv.node_consoles.get(body.node)
    fp = srv.procs.get(body.pid)
    if consoles is None:
        raise SysError(errno.ENXIO)
    if fp is None:
        raise SysError(errno.ESRCH)
    cons = srv.namei.resolve(fp, AT_FDCWD, b"/dev/console")
    out, err = consoles
    for fd, device in ((0, out), (1, out), (2, err)):
        try:
            srv.close_fd(fp, fd)
        except SysError:
            pass   # was not open
        fp.install(srv.open_file(cons.fs, DeviceAlias(cons.node, device), device, os.O_RDWR),
                   fd, False)
    return 0
