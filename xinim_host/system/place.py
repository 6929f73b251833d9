"""Who a program runs as and where it starts, PRoot-style.

* **Identity**: a booted system's init -- and so every program it starts -- takes
  the host user's ids (uid, gid, groups) unless the caller fakes root (PRoot's
  ``-0``).  Init makes the set*id calls itself, through the dispatcher, so PM, the
  VFS and the kernel's copy of the ids agree as after any setresuid.  A joined
  node's programs already get the joining user's ids from PM.
* **Place**: the first process starts in the host's cwd when that directory is
  visible inside XINIM (through a host mount, as the VFS lists them in /proc/mounts:
  ``/usr/share`` is ``/usr/share``, ``HOST/build`` bound at ``/t`` is ``/t``), else
  in ``/``.
"""
from __future__ import annotations

import errno
import os
import posixpath
import re
import stat
from typing import Sequence

from ..kernel.calls.base import SyscallContext
from ..lib import protocol as p
from ..lib.linux_abi import AT_FDCWD
from ..lib.syscalls import Sys
from ..lib.usermem import FlatMemory
from .boot import System

_BUF = 0x10000       # FlatMemory's base: init's scratch buffer for setgroups
_MOUNTS_MAX = 1 << 20


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


def xinim_path_of(host_path: str, mounts: Sequence[tuple[str, str, str]]) -> str | None:
    """Where host directory ``host_path`` appears inside XINIM, through the deepest
    host mount that holds it; None when no mount does."""
    # the same name first (/usr/bin stays /usr/bin though /usr/bin is bound at /bin
    # too), then the deepest mount
    best: tuple[bool, int, str] | None = None
    for host, xinim, _mode in mounts:
        for root in {os.path.normpath(host), os.path.realpath(host)}:
            if host_path == root or host_path.startswith(root.rstrip("/") + "/"):
                rest = host_path[len(root):].lstrip("/")
                there = posixpath.join(xinim, rest) if rest else xinim
                score = (there == host_path, len(root), there)
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
    path = xinim_path_of(host_cwd, await host_mounts(system, caller))
    if path and not await is_xinim_dir(system, caller, path):
        return path
    return "/"


async def host_mounts(system: System, caller: int) -> list[tuple[str, str, str]]:
    """The host mounts of the system, (host, xinim, ro|rw), as its VFS lists them in
    /proc/1/mounts (init's: one table for all; a joined node's kernel has no
    /proc/self, and a joined system's mounts are not in our config)."""
    async def ask(body: p.Payload) -> p.Payload:
        return (await system.lattice.sendrec(system.kernel.pid, p.VFS_PID, body)).body

    opened = await ask(p.VfsOpen(caller=caller, dirfd=AT_FDCWD, flags=os.O_RDONLY | os.O_CLOEXEC,
                                 mode=0, path=b"/proc/1/mounts"))
    if opened.error:
        return []
    text = b""
    try:
        while len(text) < _MOUNTS_MAX:
            chunk = await ask(p.VfsRead(caller=caller, fd=opened.result, count=p.DATA_MAX))
            if chunk.error or not chunk.data:
                break
            text += chunk.data
    finally:
        await ask(p.VfsClose(caller=caller, fd=opened.result))
    mounts = []
    for line in text.decode(errors="surrogateescape").splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "hostfs":
            mode = "ro" if "ro" in fields[3].split(",") else "rw"
            mounts.append((_unescape(fields[0]), _unescape(fields[1]), mode))
    return mounts


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as \\ooo."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
