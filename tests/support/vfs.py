"""Harness for the VFS tests: a Lattice with the kernel endpoint (0) and a VfsServer,
and shorthands that send real messages through ``lattice.sendrec(0, 2, ...)``."""
from __future__ import annotations

import errno
import functools
import os
import struct
from pathlib import Path
from typing import Any

import pytest
import trio

from xinim_host.lib import protocol as p
from xinim_host.lib.ipc import Lattice
from xinim_host.vfs_fuse.mounts import DEFAULT_MOUNTS
from xinim_host.vfs_fuse.server import VfsServer

AT_FDCWD = -100
DIRENT = struct.Struct("<QqHB")


def timeboxed(seconds: float = 10) -> Any:
    """A blocking test that went wrong fails after ``seconds`` instead of hanging."""
    def deco(fn: Any) -> Any:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kw: Any) -> Any:
            with trio.fail_after(seconds):
                return await fn(*args, **kw)
        return wrapper
    return deco


class Vfs:
    def __init__(self, lattice: Lattice, srv: VfsServer, host: Path, rw: Path) -> None:
        self.lattice, self.srv, self.host, self.rw = lattice, srv, host, rw

    async def call(self, msg: p.Payload, src: int = p.KERNEL_PID) -> Any:
        return (await self.lattice.sendrec(src, p.VFS_PID, msg)).body

    async def ok(self, msg: p.Payload, src: int = p.KERNEL_PID) -> Any:
        reply = await self.call(msg, src)
        assert reply.error == 0, f"{msg} failed: {errno.errorcode.get(reply.error)}"
        return reply

    async def err(self, msg: p.Payload, src: int = p.KERNEL_PID) -> str:
        """The errno name a call failed with ('OK' if it did not)."""
        reply = await self.call(msg, src)
        return errno.errorcode.get(reply.error, "OK") if reply.error else "OK"

    # shorthands, all for ``pid`` (default: init)
    async def open(self, path: bytes, flags: int = os.O_RDONLY, mode: int = 0o644, *,
                   pid: int = 1, dirfd: int = AT_FDCWD) -> int:
        return (await self.ok(p.VfsOpen(caller=pid, dirfd=dirfd, flags=flags, mode=mode,
                                        path=path))).result

    async def open_err(self, path: bytes, flags: int = os.O_RDONLY, mode: int = 0o644, *,
                       pid: int = 1, dirfd: int = AT_FDCWD) -> str:
        return await self.err(p.VfsOpen(caller=pid, dirfd=dirfd, flags=flags, mode=mode,
                                        path=path))

    async def write(self, fd: int, data: bytes, *, pid: int = 1, offset: int = -1) -> int:
        done = 0
        while done < len(data):
            r = await self.ok(p.VfsWrite(caller=pid, fd=fd, data=data[done:done + 4096],
                                         offset=offset if offset < 0 else offset + done))
            done += r.result
        return done

    async def read(self, fd: int, count: int, *, pid: int = 1, offset: int = -1) -> bytes:
        out = bytearray()
        while len(out) < count:
            r = await self.ok(p.VfsRead(caller=pid, fd=fd, count=min(4096, count - len(out)),
                                        offset=offset if offset < 0 else offset + len(out)))
            if not r.data:
                break
            out += r.data
        return bytes(out)

    async def read1(self, fd: int, count: int = 4096, *, pid: int = 1) -> bytes:
        """One read message (pipes: what is there now, or block)."""
        return (await self.ok(p.VfsRead(caller=pid, fd=fd, count=count))).data

    async def close(self, fd: int, *, pid: int = 1) -> None:
        await self.ok(p.VfsClose(caller=pid, fd=fd))

    async def stat(self, path: bytes, *, pid: int = 1, flags: int = 0) -> Any:
        return await self.ok(p.VfsStat(caller=pid, dirfd=AT_FDCWD, flags=flags, path=path))

    async def mkdir(self, path: bytes, mode: int = 0o755, *, pid: int = 1) -> None:
        await self.ok(p.VfsMkdir(caller=pid, dirfd=AT_FDCWD, mode=mode, path=path))

    async def create(self, path: bytes, data: bytes = b"", *, pid: int = 1,
                     mode: int = 0o644) -> None:
        fd = await self.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode, pid=pid)
        await self.write(fd, data, pid=pid)
        await self.close(fd, pid=pid)

    async def fork(self, parent: int, child: int) -> None:
        await self.ok(p.VfsFork(parent=parent, child=child))

    async def setids(self, pid: int, uid: int, gid: int) -> None:
        await self.ok(p.VfsSetids(pid=pid, uid=uid, euid=uid, gid=gid, egid=gid))

    async def listdir(self, path: bytes, *, pid: int = 1, count: int = 4096) -> list[bytes]:
        fd = await self.open(path, os.O_RDONLY | os.O_DIRECTORY, pid=pid)
        names: list[bytes] = []
        while True:
            r = await self.ok(p.VfsGetdents(caller=pid, fd=fd, count=count))
            if not r.data:
                break
            names += [n for n, _, _ in parse_dirents(r.data)]
        await self.close(fd, pid=pid)
        return names


def parse_dirents(buf: bytes) -> list[tuple[bytes, int, int]]:
    out = []
    pos = 0
    while pos < len(buf):
        ino, off, reclen, dtype = DIRENT.unpack_from(buf, pos)
        name = buf[pos + DIRENT.size:pos + reclen].split(b"\0", 1)[0]
        out.append((name, ino, dtype))
        pos += reclen
    return out


def make_host_tree(base: Path) -> tuple[Path, Path]:
    """A read-only host tree and a read-write one, with an escaping symlink."""
    host = base / "host"
    (host / "sub").mkdir(parents=True)
    (host / "file.txt").write_bytes(b"host data\n")
    (host / "sub" / "inner").write_bytes(b"inner\n")
    (host / "script.sh").write_bytes(b"#!/bin/sh -e\necho hi\n")
    (host / "script.sh").chmod(0o755)
    (host / "noexec.txt").write_bytes(b"plain text\n")
    (host / "noexec.txt").chmod(0o755)
    os.symlink("/etc/passwd", host / "escape")          # absolute: XINIM's /etc/passwd
    os.symlink("../../..", host / "sub" / "up")         # relative: stays in XINIM's tree
    os.symlink("sub/inner", host / "rel")
    os.symlink("/tmp/xinim-only", host / "escape2")    # exists only in XINIM's /tmp
    os.symlink(str(base), host / "outside")            # a host dir outside the mount
    rw = base / "rw"
    rw.mkdir()
    (rw / "existing").write_bytes(b"rw file\n")
    return host, rw


@pytest.fixture
async def vfs(nursery: trio.Nursery, lattice: Lattice, console: Any, tmp_path: Path) -> Any:
    host, rw = make_host_tree(tmp_path)
    lattice.register(p.KERNEL_PID)
    srv = VfsServer(lattice, console=console, mounts=list(DEFAULT_MOUNTS) + [
        (str(host), "/host", "ro"), (str(rw), "/mnt/rw", "rw")])
    lattice.connect_local(p.KERNEL_PID, p.VFS_PID)
    await nursery.start(srv.serve)
    yield Vfs(lattice, srv, host, rw)
    srv.stop()
