"""System V IPC on x86-64 Linux: constants, limits, the permission rule, the
structures ``*ctl`` copies out, and the /proc/sysvipc line formats.

Shared by MM (shared memory) and the VFS (semaphores, message queues), which
keep the per-key tables (docs/architecture.md, "System V IPC").
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

IPC_PRIVATE = 0
IPC_CREAT = 0o1000
IPC_EXCL = 0o2000
IPC_NOWAIT = 0o4000
IPC_RMID, IPC_SET, IPC_STAT, IPC_INFO = 0, 1, 2, 3
IPC_64 = 0x100                     # glibc may or it into cmd; x86-64 ignores it

SHM_HUGETLB = 0o4000               # shmget: huge pages (XINIM has none)
SHM_RDONLY = 0o10000
SHM_RND = 0o20000
SHM_REMAP = 0o40000
SHM_EXEC = 0o100000
SHM_LOCK, SHM_UNLOCK = 11, 12
SHM_STAT, SHM_INFO, SHM_STAT_ANY = 13, 14, 15
SHM_DEST = 0o1000                  # in shm_perm.mode: IPC_RMID'd, still attached
SHM_LOCKED = 0o2000
SHMLBA = 4096

GETPID, GETVAL, GETALL, GETNCNT, GETZCNT, SETVAL, SETALL = 11, 12, 13, 14, 15, 16, 17
SEM_STAT, SEM_INFO, SEM_STAT_ANY = 18, 19, 20
SEM_UNDO = 0x1000

MSG_STAT, MSG_INFO, MSG_STAT_ANY = 11, 12, 13
MSG_NOERROR = 0o10000
MSG_EXCEPT = 0o20000
MSG_COPY = 0o40000

# Linux's defaults (include/uapi/linux/{shm,sem,msg}.h)
SHMMIN = 1
SHMMNI = 4096
SHMMAX = (1 << 64) - 1 - (1 << 24)
SHMALL = (1 << 64) - 1 - (1 << 24)
SEMMNI, SEMMSL, SEMMNS, SEMOPM, SEMVMX, SEMAEM = 32000, 32000, 1024000000, 500, 32767, 32767
MSGMNI, MSGMAX, MSGMNB = 32000, 8192, 16384
IPCMNI = 32768                     # ids are seq * IPCMNI + index

S_IRUGO, S_IWUGO, S_IXUGO = 0o444, 0o222, 0o111

# struct ipc64_perm: key uid gid cuid cgid mode(u32) seq(u16) pad(u16) [pad4] unused1 unused2
IPC64_PERM = struct.Struct("<iIIIIIHH4xQQ")
# struct shmid64_ds: perm, segsz, atime, dtime, ctime, cpid, lpid, nattch, unused4, unused5
SHMID64_DS = struct.Struct("<48sQqqqiiQQQ")
SHMINFO64 = struct.Struct("<9Q")   # shmmax shmmin shmmni shmseg shmall, 4 unused
SHM_INFO_T = struct.Struct("<i4x5Q")  # used_ids shm_tot shm_rss shm_swp swap_attempts/successes
# struct semid64_ds: perm, otime, unused1, ctime, unused2, nsems, unused3, unused4
SEMID64_DS = struct.Struct("<48sqQqQQQQ")
SEMINFO = struct.Struct("<10i")    # semmap semmni semmns semmnu semmsl semopm semume semusz semvmx semaem
# struct msqid64_ds: perm, stime, rtime, ctime, cbytes, qnum, qbytes, lspid, lrpid, 2 unused
MSQID64_DS = struct.Struct("<48sqqqQQQiiQQ")
MSGINFO = struct.Struct("<7iH2x")   # msgpool msgmap msgmax msgmnb msgmni msgssz msgtql msgseg
SEMBUF = struct.Struct("<HhH")     # sem_num sem_op sem_flg
SEMBUF_SIZE = SEMBUF.size

SHM_HEADER = ("       key      shmid perms                  size  cpid  lpid nattch   uid   gid"
              "  cuid  cgid      atime      dtime      ctime                   rss"
              "                  swap\n")
SEM_HEADER = ("       key      semid perms      nsems   uid   gid  cuid  cgid      otime"
              "      ctime\n")
MSG_HEADER = ("       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid"
              "  cgid      stime      rtime      ctime\n")


@dataclass(slots=True)
class IpcPerm:
    """struct kern_ipc_perm: who owns an IPC object and who may use it."""

    key: int
    uid: int
    gid: int
    cuid: int
    cgid: int
    mode: int                      # low 9 bits: permissions; SHM_DEST/SHM_LOCKED above
    seq: int = 0

    def pack(self) -> bytes:
        return IPC64_PERM.pack(self.key, self.uid, self.gid, self.cuid, self.cgid, self.mode,
                               self.seq & 0xFFFF, 0, 0, 0)

    def allows(self, euid: int, egid: int, groups: tuple[int, ...], want: int) -> bool:
        """Linux ipcperms(): ``want`` is a mode mask (S_IRUGO...); the owner's, the
        group's or the others' bits are tried, root (CAP_IPC_OWNER) passes."""
        granted = self.mode
        if euid in (self.cuid, self.uid):
            granted >>= 6
        elif egid in (self.cgid, self.gid) or self.cgid in groups or self.gid in groups:
            granted >>= 3
        need = (want >> 6 | want >> 3 | want) & 0o7
        return (need & ~granted & 0o7) == 0 or euid == 0

    def owner(self, euid: int) -> bool:
        """May ``euid`` IPC_SET/IPC_RMID it (owner, creator or CAP_SYS_ADMIN)?"""
        return euid in (self.uid, self.cuid) or euid == 0

    def set(self, uid: int, gid: int, mode: int) -> None:
        self.uid, self.gid = uid, gid
        self.mode = (self.mode & ~0o777) | (mode & 0o777)


def unpack_perm_set(blob: bytes) -> tuple[int, int, int]:
    """(uid, gid, mode) of the ipc64_perm at the start of an IPC_SET buffer."""
    _, uid, gid, _, _, mode, *_ = IPC64_PERM.unpack_from(blob)
    return uid, gid, mode


class IdTable:
    """Linux's ipc_ids for one kind: index -> object, ids ``seq * IPCMNI + index``
    (the lowest free index, a sequence number bumped at every allocation)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.slots: dict[int, object] = {}
        self.by_key: dict[int, int] = {}         # key -> id (IPC_PRIVATE never listed)
        self.seq = 0

    def new_id(self) -> int | None:
        if len(self.slots) >= self.limit:
            return None
        idx = next(i for i in range(len(self.slots) + 1) if i not in self.slots)
        seq = self.seq
        self.seq = (self.seq + 1) % (1 << 16)
        return seq * IPCMNI + idx

    def add(self, ident: int, key: int, obj: object) -> None:
        self.slots[ident % IPCMNI] = obj
        if key != IPC_PRIVATE:
            self.by_key[key] = ident

    def get(self, ident: int) -> object | None:
        """The object of ``ident`` (None: EINVAL, or EIDRM for a stale seq)."""
        if ident < 0:
            return None
        obj = self.slots.get(ident % IPCMNI)
        if obj is None or getattr(obj, "ident") != ident:
            return None
        return obj

    def remove(self, ident: int, key: int) -> None:
        self.slots.pop(ident % IPCMNI, None)
        if key != IPC_PRIVATE and self.by_key.get(key) == ident:
            del self.by_key[key]

    def by_index(self, index: int) -> object | None:
        return self.slots.get(index)

    def max_index(self) -> int:
        return max(self.slots, default=-1)

    def __iter__(self):
        return iter([self.slots[i] for i in sorted(self.slots)])
