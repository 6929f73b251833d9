"""Notifications from PM (or the kernel) about processes: fork, exit, exec, ids, cancel.

Only PM and the kernel may send them (``m_source``); anyone else gets EPERM.
"""
from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from ..lib.errors import SysError
from ..lib.protocol import trusted_sender

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import VfsServer


def _from_pm(req: Request) -> Any:
    if not trusted_sender(req.msg.m_source):
        raise SysError(errno.EPERM)
    return req.msg.body


def do_fork(srv: VfsServer, req: Request) -> int:
    b = _from_pm(req)
    if b.child <= 0 or b.child == b.parent:
        raise SysError(errno.EINVAL)
    srv.fork_proc(b.parent, b.child)
    srv.procfs.forked(b.parent, b.child)
    return 0


def do_exit(srv: VfsServer, req: Request) -> int | None:
    pid = _from_pm(req).pid
    srv.exit_proc(pid)
    srv.procfs.exited(pid)
    srv.ptys.session_ended(pid)          # a session leader's terminal is free again
    return 0 if req.msg.req_id else None  # PM's one-way notice (request id 0): no answer


def do_exec(srv: VfsServer, req: Request) -> int:
    pid = _from_pm(req).pid
    srv.exec_proc(pid)
    srv.procfs.execed(pid)
    return 0


def do_setids(srv: VfsServer, req: Request) -> int:
    b = _from_pm(req)
    fp = srv.proc(b.pid)
    if b.uid != -1:
        fp.uid = b.uid
    if b.euid != -1:
        fp.euid = b.euid
    if b.gid != -1:
        fp.gid = b.gid
    if b.egid != -1:
        fp.egid = b.egid
    return 0


def do_setgroups(srv: VfsServer, req: Request) -> int:
    b = _from_pm(req)
    fp = srv.proc(b.pid)
    if len(b.data) % 4:
        raise SysError(errno.EINVAL)
    fp.groups = frozenset(g for (g,) in struct.iter_unpack("<I", b.data))
    return 0


def do_cancel(srv: VfsServer, req: Request) -> int:
    """Answer ``pid``'s blocked calls with ``err``; result = how many there were."""
    b = _from_pm(req)
    return srv.cancel_blocked(b.pid, b.err or errno.EINTR)
