"""Memory grants: the bulk data path between a caller's memory and a server.

MINIX's safecopy, hosted.  For a read, write or getdents the kernel does not
carry the data in 4 KiB messages: it *grants* the server access to the caller's
buffer and sends only the grant's id in the (sealed) request.  The server copies
straight between its own objects and the caller's memory -- through the
kernel's accessor for that process, i.e. ``process_vm_readv``/``writev`` on the
tracee -- in one step, and the reply says how much moved.

A grant is a capability with four bindings, all checked on every use:

* the **granter**: the kernel endpoint that made it; a server checks it against
  the request's ``m_source`` (stamped by the receiving lattice, so a joined
  node's kernel cannot name the local kernel's grants);
* the **owner**: the process whose memory it is -- the request's ``caller``;
* the **grantee**: the one server endpoint allowed to use it;
* the **access**: ``GRANT_READ`` (the server may read the buffer: a write(2)
  source) and/or ``GRANT_WRITE`` (it may fill it: a read(2) destination),
  over exactly the granted segments.

The kernel revokes the grant when the request it was made for has its answer
(or the call is abandoned: the handler's ``finally``), so a grant lives for one
call only; a stale id is EFAULT, as is any use outside the bindings.

Grants never cross a node link: the table lives in the node's ``Lattice`` and
the kernel only grants to a server on its own node.  A kernel that reaches the
VFS over a node link (``xinim-run --join``) sends the data in sealed
``DATA_MAX`` messages instead (``kernel/calls/files.py``).
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Sequence

from .errors import SysError
from .usermem import UserMemory

GRANT_READ = 1      # the grantee may copy from the owner's buffer
GRANT_WRITE = 2     # the grantee may copy into it

PAGE = 4096

Segment = tuple[int, int]          # (address, length) in the owner's memory


@dataclass(slots=True, eq=False)
class Grant:
    """One capability for a caller's buffer (see the module's docstring)."""

    gid: int
    granter: int
    owner: int
    grantee: int
    access: int
    mem: UserMemory
    segs: tuple[Segment, ...]
    size: int
    live: bool = True

    def _spans(self, offset: int, size: int):
        """(address, length) pieces of [offset, offset+size) of the granted bytes."""
        if not self.live:
            raise SysError(errno.EFAULT, "grant revoked")
        if offset < 0 or size < 0 or offset + size > self.size:
            raise SysError(errno.EFAULT, "outside the grant")
        for addr, length in self.segs:
            if offset >= length:
                offset -= length
                continue
            n = min(length - offset, size)
            yield addr + offset, n
            size -= n
            offset = 0
            if not size:
                return

    def copy_to(self, offset: int, data: bytes) -> int:
        """Copy ``data`` into the owner's buffer at grant offset ``offset``; returns
        how much arrived.  A buffer that ends early takes what fits, page by page,
        as copy_to_user does (0: nothing at all)."""
        if not self.access & GRANT_WRITE:
            raise SysError(errno.EFAULT, "grant is not writable")
        mem = self.mem
        segs = self.segs
        if len(segs) == 1 and self.live and 0 <= offset <= self.size - len(data):
            # one buffer (read(2)), the data inside it: one write, no span walk
            addr = segs[0][0] + offset
            try:
                mem.write(addr, data)
            except SysError as exc:
                if exc.errno != errno.EFAULT:
                    raise
                return _pagewise_write(mem, addr, data)
            return len(data)
        done = 0
        for addr, n in self._spans(offset, len(data)):
            piece = data[done:done + n] if n != len(data) else data
            try:
                mem.write(addr, piece)
            except SysError as exc:
                if exc.errno != errno.EFAULT:
                    raise
                return done + _pagewise_write(mem, addr, piece)
            done += n
        return done

    def copy_from(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of the owner's buffer from grant offset ``offset``:
        all of them, or those before the first page that is not there."""
        if not self.access & GRANT_READ:
            raise SysError(errno.EFAULT, "grant is not readable")
        mem = self.mem
        parts: list[bytes] = []
        for addr, n in self._spans(offset, size):
            try:
                parts.append(mem.read(addr, n))
            except SysError as exc:
                if exc.errno != errno.EFAULT:
                    raise
                parts.append(_pagewise_read(mem, addr, n))
                break
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _pagewise_write(mem: UserMemory, addr: int, data: bytes) -> int:
    ok = 0
    while ok < len(data):
        n = min(len(data) - ok, PAGE - (addr + ok) % PAGE)
        try:
            mem.write(addr + ok, data[ok:ok + n])
        except SysError:
            break
        ok += n
    return ok


def _pagewise_read(mem: UserMemory, addr: int, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        n = min(size - len(out), PAGE - (addr + len(out)) % PAGE)
        try:
            out += mem.read(addr + len(out), n)
        except SysError:
            break
    return bytes(out)


class GrantTable:
    """A node's grants, by id (ids are not reused while the table lives, mod 2**32)."""

    __slots__ = ("_grants", "_next")

    def __init__(self) -> None:
        self._grants: dict[int, Grant] = {}
        self._next = 1

    def __len__(self) -> int:
        return len(self._grants)

    def grant(self, granter: int, owner: int, grantee: int, mem: UserMemory,
              segs: Sequence[Segment], access: int) -> Grant:
        gid = self._next
        self._next = gid + 1 if gid < 0xFFFFFFFF else 1
        if type(segs) is not tuple:
            segs = tuple(segs)
        size = segs[0][1] if len(segs) == 1 else sum(n for _, n in segs)
        g = Grant(gid, granter, owner, grantee, access, mem, segs, size)
        self._grants[gid] = g
        return g

    def revoke(self, g: Grant) -> None:
        g.live = False
        if self._grants.get(g.gid) is g:
            del self._grants[g.gid]

    def check(self, gid: int, granter: int, owner: int, grantee: int, access: int) -> Grant:
        """The grant ``gid`` if it binds exactly these parties and allows ``access``;
        anything else is EFAULT (a bad capability is a bad pointer)."""
        g = self._grants.get(gid)
        if (g is None or g.granter != granter or g.owner != owner or g.grantee != grantee
                or g.access & access != access):
            raise SysError(errno.EFAULT, f"grant {gid} does not check out")
        return g


def skip(segs: Sequence[Segment], n: int) -> tuple[Segment, ...]:
    """The segments after the first ``n`` bytes."""
    out = []
    for addr, length in segs:
        if n >= length:
            n -= length
            continue
        out.append((addr + n, length - n))
        n = 0
    return tuple(out)
