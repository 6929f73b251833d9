"""System V semaphores and message queues, kept by the VFS (MINIX 3 has an IPC
server; here the VFS is it -- docs/architecture.md says why).

Per-key tables (:class:`SysvIpc`: ``sems`` and ``msgs``, each a Linux-style id
table) and per-process SEM_UNDO adjustments.  A semop or msgsnd/msgrcv that
must wait parks with ``parking.park`` on the object's WaitQueue -- every change
(a semop, SETVAL, a send, a receive, IPC_RMID) wakes it and the parked call
retries in the waker's stack; a signal fails it with EINTR (these calls are
never restarted, as Linux), a semtimedop timeout with EAGAIN, IPC_RMID with
EIDRM.  The caller's exit applies its SEM_UNDO adjustments.

Permissions are Linux's ipcperms() on the caller's VFS credentials (effective
ids and supplementary groups).
"""
from __future__ import annotations

import errno
import math
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from ..lib import protocol as p
from ..lib import sysv_abi as sv
from ..lib.errors import SysError
from ..lib.readiness import WaitQueue
from .parking import park

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import VfsServer

MTYPE = struct.Struct("<q")
STAGE_MAX = 1 << 20               # a staged message never grows past this


@dataclass(slots=True)
class SemSet:
    """A System V semaphore set."""

    ident: int
    perm: sv.IpcPerm
    vals: list[int]
    pids: list[int]
    ctime: int
    otime: int = 0
    removed: bool = False
    q: WaitQueue = field(default_factory=WaitQueue)
    # parked semops: (request, semnum, 0 for "wait for zero" / -1 for "wait to decrease")
    waiting: list[tuple[Any, int, int]] = field(default_factory=list)


@dataclass(slots=True)
class MsgQueue:
    """A System V message queue."""

    ident: int
    perm: sv.IpcPerm
    ctime: int
    msgs: list[tuple[int, bytes]] = field(default_factory=list)
    qbytes: int = sv.MSGMNB
    cbytes: int = 0
    lspid: int = 0
    lrpid: int = 0
    stime: int = 0
    rtime: int = 0
    removed: bool = False
    q: WaitQueue = field(default_factory=WaitQueue)


def _now() -> int:
    return int(time.time())


class SysvIpc:
    """The VFS's System V tables."""

    def __init__(self, srv: VfsServer) -> None:
        self.srv = srv
        self.sems = sv.IdTable(sv.SEMMNI)
        self.msgs = sv.IdTable(sv.MSGMNI)         # its limit is kernel/msgmni
        self.msgmax = sv.MSGMAX                   # kernel/msgmax (sysctl.py)
        self.undo: dict[int, dict[int, list[int]]] = {}   # pid -> semid -> adjustment per sem
        self.staged: dict[int, bytearray] = {}            # pid -> message being staged
        self.outbox: dict[int, bytes] = {}                # pid -> last received message

    # --- who asks -------------------------------------------------------------------

    def creds(self, pid: int) -> tuple[int, int, tuple[int, ...]]:
        fp = self.srv.procs.get(pid)
        if fp is None:
            return 0, 0, ()
        return fp.euid, fp.egid, tuple(fp.groups)

    def allowed(self, perm: sv.IpcPerm, pid: int, want: int) -> bool:
        euid, egid, groups = self.creds(pid)
        return perm.allows(euid, egid, groups, want)

    def owner(self, perm: sv.IpcPerm, pid: int) -> bool:
        return perm.owner(self.creds(pid)[0])

    def take_staged(self, pid: int, data: bytes) -> bytes:
        head = self.staged.pop(pid, None)
        return bytes(head) + data if head else data

    # --- process life ---------------------------------------------------------------

    def exited(self, pid: int) -> None:
        """Apply ``pid``'s SEM_UNDO adjustments (Linux exit_sem), drop its buffers."""
        self.staged.pop(pid, None)
        self.outbox.pop(pid, None)
        for semid, adj in self.undo.pop(pid, {}).items():
            s = self.sems.get(semid)
            if s is None or s.removed:               # type: ignore[union-attr]
                continue
            sem: SemSet = s                          # type: ignore[assignment]
            for i, a in enumerate(adj):
                if a:
                    sem.vals[i] = min(max(sem.vals[i] + a, 0), sv.SEMVMX)
                    sem.pids[i] = pid
            sem.otime = _now()
            sem.q.wake()

    # --- generic get ----------------------------------------------------------------

    def _get(self, table: sv.IdTable, pid: int, key: int, flg: int, make: Any,
             check: Any) -> int:
        if key != sv.IPC_PRIVATE:
            ident = table.by_key.get(key)
            if ident is not None:
                obj = table.get(ident)
                if flg & sv.IPC_CREAT and flg & sv.IPC_EXCL:
                    raise SysError(errno.EEXIST)
                check(obj)
                if not self.allowed(obj.perm, pid, flg & 0o777):    # type: ignore[union-attr]
                    raise SysError(errno.EACCES)
                return ident
            if not flg & sv.IPC_CREAT:
                raise SysError(errno.ENOENT)
        ident = table.new_id()
        if ident is None:
            raise SysError(errno.ENOSPC)
        euid, egid, _ = self.creds(pid)
        perm = sv.IpcPerm(key, euid, egid, euid, egid, flg & 0o777, ident // sv.IPCMNI)
        table.add(ident, key, make(ident, perm))
        return ident

    @staticmethod
    def _rmid_key(table: sv.IdTable, obj: Any) -> None:
        table.remove(obj.ident, obj.perm.key)
        obj.removed = True

    # --- semaphores -------------------------------------------------------------------

    def sem(self, ident: int) -> SemSet:
        s = self.sems.get(ident)
        if s is None:
            raise SysError(errno.EINVAL)
        return s  # type: ignore[return-value]

    def semget(self, pid: int, key: int, nsems: int, flg: int) -> int:
        if nsems < 0 or nsems > sv.SEMMSL:
            raise SysError(errno.EINVAL)

        def make(ident: int, perm: sv.IpcPerm) -> SemSet:
            return SemSet(ident, perm, [0] * nsems, [0] * nsems, _now())

        def check(s: SemSet) -> None:
            if nsems > len(s.vals):
                raise SysError(errno.EINVAL)

        if nsems == 0 and (key == sv.IPC_PRIVATE or key not in self.sems.by_key) \
                and (key == sv.IPC_PRIVATE or flg & sv.IPC_CREAT):
            raise SysError(errno.EINVAL)
        return self._get(self.sems, pid, key, flg, make, check)

    def _try_semop(self, s: SemSet, pid: int, ops: list[tuple[int, int, int]]
                   ) -> tuple[int, int] | None:
        """Linux perform_atomic_semop: None when done; (semnum, kind) it waits on."""
        if s.removed:
            raise SysError(errno.EIDRM)
        vals = list(s.vals)
        adj = self.undo.get(pid, {}).get(s.ident)
        new_adj = list(adj) if adj is not None else [0] * len(vals)
        for num, op, flg in ops:
            v = vals[num] + op
            if (op == 0 and vals[num] != 0) or v < 0:
                if flg & sv.IPC_NOWAIT:
                    raise SysError(errno.EAGAIN)
                return num, (0 if op == 0 else -1)
            if v > sv.SEMVMX:
                raise SysError(errno.ERANGE)
            if flg & sv.SEM_UNDO:
                u = new_adj[num] - op
                if u < -sv.SEMAEM - 1 or u > sv.SEMAEM:
                    raise SysError(errno.ERANGE)
                new_adj[num] = u
            vals[num] = v
        s.vals = vals
        for num, op, flg in ops:
            s.pids[num] = pid
        if any(flg & sv.SEM_UNDO for _, _, flg in ops):
            self.undo.setdefault(pid, {})[s.ident] = new_adj
        s.otime = _now()
        if any(op for _, op, _ in ops):
            s.q.wake()
        return None

    def semop(self, req: Request, ident: int, blob: bytes, timeout_ns: int) -> Any:
        pid = req.caller
        ops = [sv.SEMBUF.unpack_from(blob, i) for i in range(0, len(blob) - 5, 6)]
        if not ops:
            raise SysError(errno.EINVAL)
        s = self.sem(ident)
        if max(num for num, _, _ in ops) >= len(s.vals):
            raise SysError(errno.EFBIG)
        alter = any(op for _, op, _ in ops)
        if not self.allowed(s.perm, pid, sv.S_IWUGO if alter else sv.S_IRUGO):
            raise SysError(errno.EACCES)
        blocked = self._try_semop(s, pid, ops)
        if blocked is None:
            return 0
        entry = (req, blocked[0], blocked[1])
        s.waiting.append(entry)

        def attempt() -> int | None:
            got = self._try_semop(s, pid, ops)
            if got is None:
                self._unwait(s, entry)
                return 0
            return None

        def timed_out() -> int:
            self._unwait(s, entry)
            raise SysError(errno.EAGAIN)

        deadline = math.inf if timeout_ns < 0 else trio.current_time() + timeout_ns / 1e9
        return park(req, [s.q], attempt, deadline=deadline, on_timeout=timed_out,
                    no_restart=True)

    @staticmethod
    def _unwait(s: SemSet, entry: Any) -> None:
        try:
            s.waiting.remove(entry)
        except ValueError:
            pass

    def _count(self, s: SemSet, num: int, kind: int) -> int:
        s.waiting[:] = [w for w in s.waiting if not w[0].replied]
        return sum(1 for _, n, k in s.waiting if n == num and k == kind)

    def _clear_undo(self, semid: int, num: int | None) -> None:
        for adj in self.undo.values():
            a = adj.get(semid)
            if a is not None:
                if num is None:
                    a[:] = [0] * len(a)
                else:
                    a[num] = 0

    def sem_stat(self, s: SemSet) -> bytes:
        return sv.SEMID64_DS.pack(s.perm.pack(), s.otime, 0, s.ctime, 0, len(s.vals), 0, 0)

    def semctl(self, pid: int, ident: int, num: int, cmd: int, val: int,
               data: bytes) -> tuple[int, bytes]:
        cmd &= ~sv.IPC_64
        if cmd in (sv.IPC_INFO, sv.SEM_INFO):
            used = len(self.sems.slots)
            nsem = sum(len(s.vals) for s in self.sems)   # type: ignore[attr-defined]
            # Linux semctl_info(): semmap semmni semmns semmnu semmsl semopm semume
            # semusz semvmx semaem; SEM_INFO puts the sets and semaphores in use
            # where IPC_INFO has SEMUSZ and SEMAEM
            info = sv.SEMINFO.pack(sv.SEMMNS, sv.SEMMNI, sv.SEMMNS, sv.SEMMNS, sv.SEMMSL,
                                   sv.SEMOPM, sv.SEMOPM,
                                   used if cmd == sv.SEM_INFO else 20, sv.SEMVMX,
                                   nsem if cmd == sv.SEM_INFO else sv.SEMAEM)
            return max(self.sems.max_index(), 0), info
        if cmd in (sv.SEM_STAT, sv.SEM_STAT_ANY):
            s = self.sems.by_index(ident)
            if s is None:
                raise SysError(errno.EINVAL)
            if cmd == sv.SEM_STAT and not self.allowed(s.perm, pid, sv.S_IRUGO):  # type: ignore[attr-defined]
                raise SysError(errno.EACCES)
            return s.ident, self.sem_stat(s)  # type: ignore[attr-defined, arg-type]
        if cmd == sv.SETVAL and not 0 <= val <= sv.SEMVMX:
            raise SysError(errno.ERANGE)
        s = self.sem(ident)
        n = len(s.vals)
        if cmd in (sv.GETVAL, sv.GETPID, sv.GETNCNT, sv.GETZCNT, sv.SETVAL) and not 0 <= num < n:
            raise SysError(errno.EINVAL)
        if cmd in (sv.IPC_STAT, sv.GETVAL, sv.GETPID, sv.GETNCNT, sv.GETZCNT, sv.GETALL):
            if not self.allowed(s.perm, pid, sv.S_IRUGO):
                raise SysError(errno.EACCES)
            if cmd == sv.IPC_STAT:
                return 0, self.sem_stat(s)
            if cmd == sv.GETVAL:
                return s.vals[num], b""
            if cmd == sv.GETPID:
                return s.pids[num], b""
            if cmd == sv.GETNCNT:
                return self._count(s, num, -1), b""
            if cmd == sv.GETZCNT:
                return self._count(s, num, 0), b""
            return 0, struct.pack(f"<{n}H", *s.vals)
        if cmd in (sv.SETVAL, sv.SETALL):
            if not self.allowed(s.perm, pid, sv.S_IWUGO):
                raise SysError(errno.EACCES)
            if cmd == sv.SETVAL:
                s.vals[num] = val
                s.pids[num] = pid
                self._clear_undo(s.ident, num)
            else:
                if len(data) < 2 * n:
                    raise SysError(errno.EFAULT)
                vals = list(struct.unpack_from(f"<{n}H", data))
                if any(v > sv.SEMVMX for v in vals):
                    raise SysError(errno.ERANGE)
                s.vals = vals
                s.pids = [pid] * n
                self._clear_undo(s.ident, None)
            s.ctime = _now()
            s.q.wake()
            return 0, b""
        if cmd in (sv.IPC_SET, sv.IPC_RMID):
            if not self.owner(s.perm, pid):
                raise SysError(errno.EPERM)
            if cmd == sv.IPC_SET:
                if len(data) < sv.IPC64_PERM.size:
                    raise SysError(errno.EFAULT)
                s.perm.set(*sv.unpack_perm_set(data))
                s.ctime = _now()
            else:
                self._rmid_key(self.sems, s)
                for adj in self.undo.values():
                    adj.pop(s.ident, None)
                s.q.wake()                       # parked semops fail with EIDRM
            return 0, b""
        raise SysError(errno.EINVAL)

    # --- message queues ------------------------------------------------------------------

    def msq(self, ident: int) -> MsgQueue:
        q = self.msgs.get(ident)
        if q is None:
            raise SysError(errno.EINVAL)
        return q  # type: ignore[return-value]

    def msgget(self, pid: int, key: int, flg: int) -> int:
        return self._get(self.msgs, pid, key, flg,
                         lambda ident, perm: MsgQueue(ident, perm, _now()), lambda q: None)

    def msgsnd(self, req: Request, ident: int, mtype: int, text: bytes, flg: int) -> Any:
        pid = req.caller
        if len(text) > self.msgmax or mtype < 1:
            raise SysError(errno.EINVAL)
        q = self.msq(ident)
        if not self.allowed(q.perm, pid, sv.S_IWUGO):
            raise SysError(errno.EACCES)

        def attempt() -> int | None:
            if q.removed:
                raise SysError(errno.EIDRM)
            if q.cbytes + len(text) > q.qbytes or len(q.msgs) + 1 > q.qbytes:
                if flg & sv.IPC_NOWAIT:
                    raise SysError(errno.EAGAIN)
                return None
            q.msgs.append((mtype, text))
            q.cbytes += len(text)
            q.lspid, q.stime = pid, _now()
            q.q.wake()
            return 0

        got = attempt()
        if got is not None:
            return got
        return park(req, [q.q], attempt, no_restart=True)

    @staticmethod
    def _find(q: MsgQueue, msgtyp: int, flg: int) -> int | None:
        if flg & sv.MSG_COPY:
            return msgtyp if 0 <= msgtyp < len(q.msgs) else None
        if msgtyp == 0:
            return 0 if q.msgs else None
        if msgtyp > 0:
            for i, (t, _) in enumerate(q.msgs):
                if (t != msgtyp) if flg & sv.MSG_EXCEPT else (t == msgtyp):
                    return i
            return None
        best = None
        for i, (t, _) in enumerate(q.msgs):
            if t <= -msgtyp and (best is None or t < q.msgs[best][0]):
                best = i
        return best

    def msgrcv(self, req: Request, ident: int, size: int, msgtyp: int, flg: int) -> Any:
        pid = req.caller
        if size < 0:
            raise SysError(errno.EINVAL)
        if flg & sv.MSG_COPY and (not flg & sv.IPC_NOWAIT or flg & sv.MSG_EXCEPT):
            raise SysError(errno.EINVAL)
        q = self.msq(ident)
        if not self.allowed(q.perm, pid, sv.S_IRUGO):
            raise SysError(errno.EACCES)

        def attempt() -> p.VfsSysvReply | None:
            if q.removed:
                raise SysError(errno.EIDRM)
            i = self._find(q, msgtyp, flg)
            if i is None:
                if flg & sv.IPC_NOWAIT:
                    raise SysError(errno.ENOMSG)
                return None
            mtype, whole = q.msgs[i]
            text = whole
            if len(text) > size:
                if not flg & sv.MSG_NOERROR:
                    raise SysError(errno.E2BIG)
                text = text[:size]
            if not flg & sv.MSG_COPY:
                del q.msgs[i]
                q.cbytes -= len(whole)
                q.lrpid, q.rtime = pid, _now()
                q.q.wake()
            out = MTYPE.pack(mtype) + text
            if len(out) > p.DATA_MAX:
                self.outbox[pid] = out
            else:
                self.outbox.pop(pid, None)
            return p.VfsSysvReply(result=len(text), data=out[:p.DATA_MAX])

        got = attempt()
        if got is not None:
            return got
        return park(req, [q.q], attempt, no_restart=True)

    def msq_stat(self, q: MsgQueue) -> bytes:
        return sv.MSQID64_DS.pack(q.perm.pack(), q.stime, q.rtime, q.ctime, q.cbytes,
                                  len(q.msgs), q.qbytes, q.lspid, q.lrpid, 0, 0)

    def msgctl(self, pid: int, ident: int, cmd: int, data: bytes) -> tuple[int, bytes]:
        cmd &= ~sv.IPC_64
        if cmd in (sv.IPC_INFO, sv.MSG_INFO):
            queues = list(self.msgs)
            if cmd == sv.MSG_INFO:       # Linux msgctl_info(): what is in use
                pool = len(queues)
                msgmap = min(sum(len(q.msgs) for q in queues), 0x7FFFFFFF)  # type: ignore[attr-defined]
                tql = min(sum(q.cbytes for q in queues), 0x7FFFFFFF)       # type: ignore[attr-defined]
            else:                        # the limits: MSGPOOL, MSGMAP, MSGTQL
                pool, msgmap, tql = self.msgs.limit * sv.MSGMNB // 1024, sv.MSGMNB, sv.MSGMNB
            info = sv.MSGINFO.pack(pool, msgmap, self.msgmax, sv.MSGMNB, self.msgs.limit, 16, tql,
                                   0xFFFF)
            return max(self.msgs.max_index(), 0), info
        if cmd in (sv.MSG_STAT, sv.MSG_STAT_ANY):
            q = self.msgs.by_index(ident)
            if q is None:
                raise SysError(errno.EINVAL)
            if cmd == sv.MSG_STAT and not self.allowed(q.perm, pid, sv.S_IRUGO):  # type: ignore[attr-defined]
                raise SysError(errno.EACCES)
            return q.ident, self.msq_stat(q)  # type: ignore[attr-defined, arg-type]
        q = self.msq(ident)
        if cmd == sv.IPC_STAT:
            if not self.allowed(q.perm, pid, sv.S_IRUGO):
                raise SysError(errno.EACCES)
            return 0, self.msq_stat(q)
        if cmd in (sv.IPC_SET, sv.IPC_RMID):
            if not self.owner(q.perm, pid):
                raise SysError(errno.EPERM)
            if cmd == sv.IPC_SET:
                if len(data) < sv.MSQID64_DS.size:
                    raise SysError(errno.EFAULT)
                fields = sv.MSQID64_DS.unpack_from(data)
                qbytes = fields[6]
                if qbytes > sv.MSGMNB and self.creds(pid)[0] != 0:
                    raise SysError(errno.EPERM)
                q.perm.set(*sv.unpack_perm_set(data))
                q.qbytes = qbytes
                q.ctime = _now()
            else:
                self._rmid_key(self.msgs, q)
            q.q.wake()
            return 0, b""
        raise SysError(errno.EINVAL)

    # --- /proc/sysvipc ---------------------------------------------------------------

    def listing(self, what: bytes) -> bytes:
        if what == b"sem":
            out = [sv.SEM_HEADER]
            for s in self.sems:
                out.append("%10d %10d  %4o %10u %5u %5u %5u %5u %10d %10d\n" % (
                    s.perm.key, s.ident, s.perm.mode, len(s.vals), s.perm.uid,  # type: ignore[attr-defined]
                    s.perm.gid, s.perm.cuid, s.perm.cgid, s.otime, s.ctime))  # type: ignore[attr-defined]
            return "".join(out).encode()
        out = [sv.MSG_HEADER]
        for q in self.msgs:
            out.append("%10d %10d  %4o  %10u %10u %5u %5u %5u %5u %5u %5u %10d %10d %10d\n" % (
                q.perm.key, q.ident, q.perm.mode, q.cbytes, len(q.msgs),  # type: ignore[attr-defined]
                q.lspid, q.lrpid, q.perm.uid, q.perm.gid, q.perm.cuid,  # type: ignore[attr-defined]
                q.perm.cgid, q.stime, q.rtime, q.ctime))  # type: ignore[attr-defined]
        return "".join(out).encode()


# --- the handler ------------------------------------------------------------------------


def do_sysv(srv: VfsServer, req: Request) -> Any:
    b = req.msg.body
    ipc: SysvIpc = srv.sysv
    pid = req.caller
    op = b.op
    if op == p.SV_STAGE:
        buf = ipc.staged.setdefault(pid, bytearray())
        if len(buf) + len(b.data) > STAGE_MAX:
            ipc.staged.pop(pid, None)
            raise SysError(errno.EINVAL)
        buf += b.data
        return 0
    if op == p.SV_NSEMS:                 # the kernel's question before SETALL
        return len(ipc.sem(b.ident).vals)
    if op == p.SV_FETCH:
        out = ipc.outbox.get(pid, b"")
        return p.VfsSysvReply(result=len(out), data=out[b.a1:b.a1 + p.DATA_MAX])
    data = ipc.take_staged(pid, b.data)
    if op == p.SV_SEMGET:
        return ipc.semget(pid, b.ident, b.a1, b.a2)
    if op == p.SV_SEMOP:
        return ipc.semop(req, b.ident, data, b.timeout_ns)
    if op == p.SV_SEMCTL:
        result, out = ipc.semctl(pid, b.ident, b.a1, b.a2, b.a3, data)
        return p.VfsSysvReply(result=result, data=out)
    if op == p.SV_MSGGET:
        return ipc.msgget(pid, b.ident, b.a1)
    if op == p.SV_MSGSND:
        return ipc.msgsnd(req, b.ident, b.a1, data, b.a2)
    if op == p.SV_MSGRCV:
        return ipc.msgrcv(req, b.ident, b.a1, b.a2, b.a3)
    if op == p.SV_MSGCTL:
        result, out = ipc.msgctl(pid, b.ident, b.a1, data)
        return p.VfsSysvReply(result=result, data=out)
    raise SysError(errno.EINVAL, f"System V op {op}")
