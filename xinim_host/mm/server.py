"""The Memory Manager (PID 4): its state and the services its handlers share.

The call vector is :data:`~.table.CALL_VECTOR`; handlers live in
``handlers_mem`` (memory calls) and ``handlers_proc`` (process life, maps).

The frame pool's size ("physical memory") is ``phys_size``; when the caller
gives none (``kernel.boot`` does not) it comes from the environment variable
``XINIM_MM_PHYS`` -- bytes, or a number with a K, M or G suffix (binary units),
e.g. ``XINIM_MM_PHYS=64M xinim-run prog`` -- else 256 MiB.  A value that does
not parse, or is below one page, is reported and the default used.
The address spaces and the frame pool are one :class:`MemoryAccounting`;
``procs`` keeps what only the server needs per process (host pid, whether the
host's break is known, write-back fds, undo tokens).
"""
from __future__ import annotations

import errno
import logging
import os
import re
from typing import Any

from ..lib import protocol as p
from ..lib.errors import SysError
from ..lib.ipc import Lattice
from ..lib.server import Server
from .accounting import MemoryAccounting
from .frames import DEFAULT_PHYS_SIZE, FrameAllocator
from ..lib.vm_abi import PAGE_SIZE
from .handlers_common import UNDO_KEEP, MmProc, Undo
from .regions import AddressSpace
from .shm import ShmTable
from .table import CALL_VECTOR

log = logging.getLogger(__name__)

PHYS_ENV = "XINIM_MM_PHYS"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """``"268435456"``, ``"64M"``, ``"1g"``, ``"512 KiB"`` -> bytes (ValueError otherwise)."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:I?B)?\s*", text, re.IGNORECASE)
    if m is None:
        raise ValueError(f"{text!r} is not a size (bytes, or a number with K, M or G)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def phys_size_from_env(environ: dict[str, str] | None = None) -> int:
    """The pool size ``XINIM_MM_PHYS`` asks for, else DEFAULT_PHYS_SIZE."""
    text = (os.environ if environ is None else environ).get(PHYS_ENV)
    if not text:
        return DEFAULT_PHYS_SIZE
    try:
        size = parse_size(text)
        if size < PAGE_SIZE:
            raise ValueError(f"{size} bytes is less than one page")
    except ValueError as exc:
        log.error("%s: %s; using %d MiB", PHYS_ENV, exc, DEFAULT_PHYS_SIZE >> 20)
        return DEFAULT_PHYS_SIZE
    return size


# the requests that can take a region away (a System V attach among them)
_DROPS_REGIONS = frozenset((p.MM_MUNMAP, p.MM_MMAP, p.MM_MMAP_FILE, p.MM_MREMAP, p.MM_EXIT,
                            p.MM_EXEC, p.MM_EXEC_LAYOUT, p.MM_SPAWN, p.MM_FORK, p.MM_UNDO,
                            p.MM_SHMAT, p.MM_SHMDT, p.MM_BRK))


class MmServer(Server):
    """``MmServer(lattice, phys_size=None)``: the frame pool's size is the
    machine's "physical memory" (None: ``XINIM_MM_PHYS`` or 256 MiB);
    exhausting it is ENOMEM to the program."""

    pid = p.MM_PID
    reply_type = p.MM_REPLY
    handlers = CALL_VECTOR

    def __init__(self, lattice: Lattice, *, phys_size: int | None = None) -> None:
        super().__init__(lattice)
        if phys_size is None:
            phys_size = phys_size_from_env()
        self.acct = MemoryAccounting(FrameAllocator(phys_size))
        self.procs: dict[int, MmProc] = {}
        self._next_token = 1           # undo records live in their process's MmProc.undos
        self.shm = ShmTable(self)

    def handle(self, delivery: Any) -> None:
        super().handle(delivery)
        # a removed segment's last attach may just have gone with a region
        if self.shm.doomed and getattr(getattr(delivery, "body", None), "M_TYPE",
                                       None) in _DROPS_REGIONS:
            self.shm.collect()

    # --- processes --------------------------------------------------------------------

    def proc(self, pid: int) -> MmProc:
        try:
            return self.procs[pid]
        except KeyError:
            raise SysError(errno.ESRCH, f"MM has no pid {pid}") from None

    def add_proc(self, pid: int, space: AddressSpace, proc: MmProc) -> None:
        self.acct.add(pid, space)
        self.procs[pid] = proc

    def drop_proc(self, pid: int) -> None:
        """Forget ``pid`` and release its frames (nothing if unknown)."""
        self.procs.pop(pid, None)       # (its undo records with it)
        if pid in self.acct:
            self.acct.exit(pid)

    # --- undo tokens --------------------------------------------------------------------

    def remember(self, pid: int, undo: Undo) -> int:
        """A token for ``undo``; only the last UNDO_KEEP of a process are kept."""
        proc = self.procs.get(pid)
        if proc is None:
            raise SysError(errno.ESRCH, f"MM has no pid {pid}")
        token = self._next_token
        self._next_token = token + 1
        undos = proc.undos
        undos[token] = undo
        if len(undos) > UNDO_KEEP:
            del undos[next(iter(undos))]        # the oldest (dicts keep insertion order)
        return token

    def take_undo(self, pid: int, token: int) -> Undo:
        proc = self.procs.get(pid)
        undo = proc.undos.pop(token, None) if proc is not None else None
        if undo is None:
            raise SysError(errno.EINVAL, f"no undo record {token} for pid {pid}")
        return undo
