"""The seam between PM and the servers it keeps informed (MINIX ``pm/forkexit.c``
tells VFS and VM; we tell VFS and MM).

:class:`PmNotifier` is all PM needs; :class:`LatticeNotifier` (the default)
sends the VFS's notification messages (140-145, :mod:`protocol.vfs`) and MM's
(``MmFork``/``MmExec``/``MmExit``, :mod:`protocol.mm`).  A server PM has no
channel to is skipped.

Every method answers a :data:`Completion`: an errno now (0: done), or an
awaitable of one.  PM waits for fork, exec and id changes (the process must not
run before VFS/MM caught up) and not for exit or interrupt.
"""
from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from ..lib import protocol as p
from ..lib.errors import SysError
from ..lib.ipc import Lattice, Pending
from ..lib.linux_abi import AT_FDCWD

log = logging.getLogger(__name__)

Completion = int | Awaitable[int]


@dataclass(frozen=True, slots=True)
class ExecTarget:
    """A file checked for execve (what VFS_EXEC_OPEN answers)."""

    host_path: bytes = b""
    dev: int = 0
    ino: int = 0
    mode: int = 0o100755
    uid: int = 0
    gid: int = 0
    script: bool = False
    interp: bytes = b""
    interp_arg: bytes = b""
    committed: bool = False     # the VFS did VFS_EXEC's work with the check


ExecCheck = ExecTarget | int | Awaitable["ExecTarget | int"]


class PmNotifier(Protocol):
    def fork(self, parent: int, child: int, share_vm: bool = False) -> Completion: ...
    def exec(self, pid: int, vfs: bool = True, mm: bool = True) -> Completion: ...
    def exit(self, pid: int) -> Completion: ...
    def setids(self, pid: int, uid: int, euid: int, gid: int, egid: int) -> Completion: ...
    def setgroups(self, pid: int, groups: tuple[int, ...]) -> Completion: ...
    def interrupt(self, pid: int, err: int) -> Completion: ...
    def exec_check(self, pid: int, path: bytes, commit: bool = False) -> ExecCheck: ...


async def gather(*parts: Completion) -> int:
    """The first errno of several completions (each awaited)."""
    err = 0
    for part in parts:
        value = part if isinstance(part, int) else await part
        err = err or value
    return err


def combine(*parts: Completion) -> Completion:
    """Several completions as one; stays synchronous when they all are."""
    if all(isinstance(part, int) for part in parts):
        return next((part for part in parts if part), 0)  # type: ignore[return-value]
    return gather(*parts)


class LatticeNotifier:
    """Sends the notifications over the lattice from PM's endpoint."""

    def __init__(self, lattice: Lattice) -> None:
        self.lattice = lattice

    # --- plumbing ------------------------------------------------------------------

    def _connected(self, dst: int) -> bool:
        return (p.PM_PID, dst) in self.lattice.send_channels

    def _ask(self, dst: int, body: p.Payload) -> Completion:
        """Send and hand back the reply's errno, now or later."""
        if not self._connected(dst):
            return 0
        try:
            answer = self.lattice.call(p.PM_PID, dst, body)
        except SysError as exc:
            log.warning("PM -> %d %s: %s", dst, type(body).__name__, exc)
            return exc.errno
        if isinstance(answer, Pending):
            return _errno_later(answer)
        return answer.body.error  # type: ignore[attr-defined]

    def _tell(self, dst: int, body: p.Payload) -> Completion:
        """Send without waiting: the reply only gets logged if it is an error."""
        if not self._connected(dst):
            return 0
        try:
            answer = self.lattice.call(p.PM_PID, dst, body)
        except SysError as exc:
            log.warning("PM -> %d %s: %s", dst, type(body).__name__, exc)
            return 0
        if isinstance(answer, Pending):
            answer.add_done_callback(lambda msg: _log_error(dst, body, msg))
        else:
            _log_error(dst, body, answer)
        return 0

    def _notice(self, dst: int, body: p.Payload) -> None:
        """A one-way notice (request id 0): the server answers nothing, so nothing
        is sealed back for PM to drop.  A full queue: sent as a request instead."""
        if not self._connected(dst):
            return
        try:
            self.lattice.send_nowait(p.PM_PID, dst, body)
        except SysError as exc:
            log.debug("PM -> %d %s one-way: %s; as a request", dst, type(body).__name__, exc)
            self._tell(dst, body)

    def _both(self, vfs: p.Payload, mm: p.Payload, wait: bool) -> Completion:
        send = self._ask if wait else self._tell
        return combine(send(p.VFS_PID, vfs), send(p.MM_PID, mm))

    # --- PmNotifier --------------------------------------------------------------------

    def fork(self, parent: int, child: int, share_vm: bool = False) -> Completion:
        """``share_vm``: a CLONE_VM child (vfork), which shares the parent's record."""
        return self._both(p.VfsFork(parent=parent, child=child),
                          p.MmFork(parent=parent, child=child,
                                   flags=p.MM_FORK_SHARE_VM if share_vm else 0), True)

    def exec(self, pid: int, vfs: bool = True, mm: bool = True) -> Completion:
        """``vfs``/``mm`` False: that server has heard already (the VFS with a
        committing exec check, MM from the kernel's fresh MmExecLayout)."""
        if vfs and mm:
            return self._both(p.VfsExec(pid=pid), p.MmExec(pid=pid), True)
        if vfs:
            return self._ask(p.VFS_PID, p.VfsExec(pid=pid))
        if mm:
            return self._ask(p.MM_PID, p.MmExec(pid=pid))
        return 0

    def exit(self, pid: int) -> Completion:
        self._tell(p.NET_PID, p.NetExit(pid=pid))     # its blocked socket calls go
        # not awaited, so not answered either (two sealed replies fewer per exit)
        self._notice(p.VFS_PID, p.VfsExit(pid=pid))
        self._notice(p.MM_PID, p.MmExit(pid=pid))
        return 0

    def setids(self, pid: int, uid: int, euid: int, gid: int, egid: int) -> Completion:
        return self._ask(p.VFS_PID, p.VfsSetids(pid=pid, uid=uid, euid=euid, gid=gid,
                                                egid=egid))

    def setgroups(self, pid: int, groups: tuple[int, ...]) -> Completion:
        blob = b"".join(g.to_bytes(4, "little") for g in groups)
        return self._ask(p.VFS_PID, p.VfsSetgroups(pid=pid, data=blob))

    def sig_pending(self, pid: int, pending: int) -> Completion:
        """``pid`` holds a signalfd and its pending set is now ``pending``."""
        return self._tell(p.VFS_PID, p.VfsSigPending(pid=pid, pending=pending))

    def interrupt(self, pid: int, err: int) -> Completion:
        """A signal must interrupt ``pid``'s calls blocked in the VFS (answered
        ``err``).  The kernel's own waits (nanosleep) are ended through the host
        half: ``PmServer.interrupt_kernel_waits``."""
        self._tell(p.NET_PID, p.NetCancel(pid=pid, err=err))   # socket calls NET parked
        return self._tell(p.VFS_PID, p.VfsCancel(pid=pid, err=err))

    def exec_check(self, pid: int, path: bytes, commit: bool = False) -> ExecCheck:
        """VFS_EXEC_OPEN; with ``commit`` an ELF answer also did VFS_EXEC's work."""
        if not self._connected(p.VFS_PID):
            return errno.ENOENT
        body = p.VfsExecOpen(caller=pid, dirfd=AT_FDCWD, flags=p.EXEC_COMMIT if commit else 0,
                             path=path)
        try:
            answer = self.lattice.call(p.PM_PID, p.VFS_PID, body)
        except SysError as exc:
            return exc.errno
        if isinstance(answer, Pending):
            return _target_later(answer, commit)
        return _target_of(answer.body, commit)


def _target_of(body: p.Payload, commit: bool = False) -> ExecTarget | int:
    if body.error:  # type: ignore[attr-defined]
        return body.error  # type: ignore[attr-defined]
    r = body
    return ExecTarget(host_path=r.host_path, dev=r.dev, ino=r.ino, mode=r.mode,  # type: ignore
                      uid=r.uid, gid=r.gid, script=bool(r.script), interp=r.interp,  # type: ignore
                      interp_arg=r.interp_arg,  # type: ignore[attr-defined]
                      committed=commit and not r.script)  # type: ignore[attr-defined]


async def _target_later(pending: Pending, commit: bool) -> ExecTarget | int:
    return _target_of((await pending.wait()).body, commit)


async def _errno_later(pending: Pending) -> int:
    return (await pending.wait()).body.error  # type: ignore[attr-defined]


def _log_error(dst: int, body: p.Payload, msg: p.Message) -> None:
    err = getattr(msg.body, "error", 0)
    if err:
        log.warning("PM -> %d %s answered errno %d", dst, type(body).__name__, err)
