"""Who a program runs as and where it starts, PRoot-style.

* **Identity**: a booted system's init -- and so every program it starts -- takes
  the host user's ids (uid, gid, groups) unless the caller fakes root (PRoot's
  ``-0``).  Init makes the set*id calls itself, through the dispatcher, so PM, the
  VFS and the kernel's copy of the ids agree as after any setresuid.  A joined
  node's programs already get the joining user's ids from PM.
* **Place**: the first process starts in the host's cwd when that directory is
  visible inside XINIM (through a host mount: ``/usr/share`` is ``/usr/share``,
  ``HOST/build`` bound at ``/t`` is ``/t``), else in ``/``.
"""
from __future__ import annotations

import errno
import os
import posixpath
import stat
from typing import Sequence

from ..kernel.calls.base import SyscallContext
from ..lib import protocol as p
from ..lib.linux_abi import AT_FDCWD
from ..lib.syscalls import Sys
from ..lib.usermem import FlatMemory
from ..vfs_fuse.mounts import DEFAULT_MOUNTS
from .boot import System

_BUF = 0x10000       # FlatMemory's base: init's scratch buffer for setgroups


async def take_host_identity(system: System, uid: int, gid: int, groups: Sequence[int]) -> None:
    """Init (and what it starts) becomes host user ``uid``/``gid`` with ``groups``."""
    mem = FlatMemory(4096)
    groups = list(groups)[:1024]
    mem.write(_BUF, b"".join(g.to_bytes(4, "little") for g in groups))

    async def call(nr: Sys, *args: int) -> None:
        ctx = SyscallContext(pid=p.INIT_PID, args=(*args, 0, 0, 0, 0, 0, 0)[:6], mem=mem)
        result = await system.kernel.syscall(nr, ctx)
        if result < 0:
            raise OSError(-result, f"init's {nr.name.lower()}: {os.strerror(-result)}")

    await call(Sys.SETGROUPS, len(groups), _BUF)
    await call(Sys.SETRESGID, gid, gid, gid)
    await call(Sys.SETRESUID, uid, uid, uid)


def xinim_path_of(host_path: str, mounts: Sequence[tuple[str, str, str]] | None) -> str | None:
    """Where host directory ``host_path`` appears inside XINIM, through the deepest
    host mount that holds it; None when no mount does."""
    best: tuple[int, int, str] | None = None
    for host, xinim, _mode in (mounts if mounts is not None else DEFAULT_MOUNTS):
        # the mount's own name first (/usr/bin is /usr/bin, though /bin -> usr/bin)
        for literal, root in ((1, os.path.normpath(host)), (0, os.path.realpath(host))):
            if host_path == root or host_path.startswith(root.rstrip("/") + "/"):
                rest = host_path[len(root):].lstrip("/")
                score = (literal, len(root), posixpath.join(xinim, rest) if rest else xinim)
                if best is None or score[:2] > best[:2]:
                    best = score
    return best[2] if best else None


async def xinim_stat(system: System, caller: int, path: str) -> p.Payload:
    """stat of ``path`` in XINIM's namespace, as ``caller`` sees it (its rights)."""
    return (await system.lattice.sendrec(system.kernel.pid, p.VFS_PID, p.VfsStat(
        caller=caller, dirfd=AT_FDCWD, flags=0, path=os.fsencode(path)))).body


async def is_xinim_dir(system: System, caller: int, path: str) -> int:
    """0 when ``path`` is a directory in XINIM that ``caller`` may enter, else an errno."""
    reply = await xinim_stat(system, caller, path)
    if reply.error:
        return reply.error
    if not stat.S_ISDIR(reply.mode):
        return errno.ENOTDIR
    return 0


async def start_dir(system: System, caller: int, requested: str | None,
                    host_cwd: str | None) -> str:
    """The first process's cwd: ``requested`` (``-w``; OSError when it is no
    directory), else the host cwd's place inside XINIM when there is one, else /."""
    if requested is not None:
        path = posixpath.normpath(posixpath.join("/", requested))
        err = await is_xinim_dir(system, caller, path)
        if err:
            raise OSError(err, os.strerror(err), requested)
        return path
    if not host_cwd:
        return "/"
    mounts = None if system.joined_node else system.config.mounts
    candidates = [xinim_path_of(host_cwd, mounts)]
    if system.joined_node:
        candidates.append(host_cwd)        # the system's mounts are not ours to read
    for path in candidates:
        if path and not await is_xinim_dir(system, caller, path):
            return path
    return "/"
