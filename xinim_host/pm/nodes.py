"""Processes of joined nodes (``xinim-run --join``): who owns them, what ids they
get, and what happens when their node goes away.

A joined node's kernel (``node_kernel_pid``) reports the host tasks it runs like
the boot's kernel does, but PM holds it to its own node: it may fork from init (a
new program of that node) or from a process of its node, and it may report only
on its own tasks.  Each task PM names for it is recorded in ``Lattice.owners``
(the servers then believe that kernel's ``caller`` for it, and only for it).  A
program it starts from init gets the node's host uid and gid (SO_PEERCRED), not
init's root -- unless that host user is root.  When the node's link ends, its
processes die as if SIGKILLed (their host tasks are not PM's to signal: they went
with their tracer, or never were).
"""
from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any

from ..lib import protocol as p
from ..lib.errors import SysError
from ..lib.ipc import NodePeer
from .notify import combine
from .proctable import Process, Task

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import PmServer


def peer_of(pm: "PmServer", req: "Request") -> NodePeer | None:
    """The joined node whose kernel sent ``req`` (None: the boot's kernel or PM)."""
    return pm.lattice.peer_of_kernel(req.msg.m_source)


def check_fork(pm: "PmServer", req: "Request") -> NodePeer | None:
    """A joined node forks only from init or its own tasks, with host tasks of its
    own user; raises EPERM otherwise."""
    peer = peer_of(pm, req)
    if peer is None:
        return None
    body = req.body
    if body.parent_pid != p.INIT_PID and pm.lattice.owners.get(body.parent_pid) != peer.node:
        raise SysError(errno.EPERM, f"node {peer.node} forked from pid {body.parent_pid}")
    host = body.child_host_pid
    if host and peer.uid != 0 and _host_uid(host) != peer.uid:
        # PM signals the host task it is told of: it must be the peer user's own
        raise SysError(errno.EPERM, f"node {peer.node}: host task {host} is not its user's")
    return peer


def _host_uid(host_pid: int) -> int:
    try:
        return os.stat(f"/proc/{host_pid}").st_uid
    except (OSError, ValueError, OverflowError):
        return -1


def adopt(pm: "PmServer", peer: NodePeer | None, tid: int, child: Process | None,
          from_init: bool) -> Any:
    """Record who owns the new task ``tid``; a node's program from init gets the
    node's host ids.  Returns the Completion of telling VFS (0: nothing to tell)."""
    owners = pm.lattice.owners
    if peer is None:
        owners.pop(tid, None)        # a pid reused by the boot's own process
        return 0
    owners[tid] = peer.node
    if child is None or not from_init or peer.uid == 0:
        return 0
    uid, gid = peer.uid, peer.gid
    child.ruid = child.euid = child.suid = uid
    child.rgid = child.egid = child.sgid = gid
    child.groups = ()
    return combine(pm.notify.setids(child.pid, uid, uid, gid, gid),
                   pm.notify.setgroups(child.pid, ()))


def check_task(pm: "PmServer", req: "Request", task: Task | None) -> None:
    """A joined node reports only on its own tasks (ESRCH for anyone else's)."""
    peer = peer_of(pm, req)
    if peer is not None and task is not None and \
            pm.lattice.owners.get(task.tid) != peer.node and \
            pm.lattice.owners.get(task.proc.pid) != peer.node:
        raise SysError(errno.ESRCH)
