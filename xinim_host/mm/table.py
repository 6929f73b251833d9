"""MM's call vector (MINIX ``vm/table.c`` style): message type -> handler.

Types not listed answer ENOSYS through the server base.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..lib import protocol as p
from ..lib.server import Handler
from . import handlers_mem as mem
from . import handlers_proc as proc
from . import shm

CALL_VECTOR: Mapping[int, Handler] = {
    # the memory calls (from the kernel's handlers)
    p.MM_BRK: mem.do_brk,
    p.MM_MMAP: mem.do_mmap,
    p.MM_MUNMAP: mem.do_munmap,
    p.MM_MPROTECT: mem.do_mprotect,
    p.MM_MREMAP: mem.do_mremap,
    p.MM_MADVISE: mem.do_madvise,
    p.MM_MSYNC: mem.do_msync,
    p.MM_MMAP_FILE: mem.do_mmap_file,
    p.MM_REMAP_FILE: mem.do_remap_file,
    # the hosted model's helpers
    p.MM_UNDO: mem.do_undo,
    p.MM_SET_BRK: mem.do_set_brk,
    p.MM_CHARGE: mem.do_charge,
    # process life (kernel or PM)
    p.MM_SPAWN: proc.do_spawn,
    p.MM_EXEC: proc.do_exec,
    p.MM_EXEC_LAYOUT: proc.do_exec_layout,
    p.MM_FORK: proc.do_fork,
    p.MM_EXIT: proc.do_exit,
    # System V shared memory (shm.py)
    p.MM_SHMGET: shm.do_shmget,
    p.MM_SHMAT: shm.do_shmat,
    p.MM_SHMDT: shm.do_shmdt,
    p.MM_SHMCTL: shm.do_shmctl,
    # queries
    p.MM_MAPS: proc.do_maps,
    p.MM_SHM_LIST: shm.do_shm_list,
    p.MM_SHM_LIMITS: shm.do_shm_limits,
}
