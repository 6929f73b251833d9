"""POSIX message queues: the mqueue filesystem at /dev/mqueue and its descriptors.

A queue is an :class:`Mqueue` (its messages, attributes, owner and the one
notification registration) with a :class:`PNode` in :class:`MqueueFs`, which is
mounted at ``/dev/mqueue``: ``ls`` lists the queues, ``cat`` reads Linux's
``QSIZE:... NOTIFY:... SIGNO:... NOTIFY_PID:...`` line, ``rm`` (unlink) removes
one.  An mq descriptor is an ordinary VFS open file on that node whose ``io``
is the queue: ``poll``/``select``/epoll see it through ``io.poll``/``io.waitq``
(POLLIN while a message waits, POLLOUT while there is room), and a send or
receive that must wait parks on the queue's WaitQueue (``parking.park``), woken
by the receive or send that changes it; a signal fails it (restarted under
SA_RESTART, as Linux's ERESTARTSYS), an absolute CLOCK_REALTIME timeout with
ETIMEDOUT.  Messages longer than one IPC message's data travel through the
VFS's System V staging buffers (``sysv.py``: SV_STAGE / SV_FETCH).

Not done: mq_notify's SIGEV_THREAD (glibc needs a netlink socket for it), the
siginfo of the notification signal (PM sends a plain signal), RLIMIT_MSGQUEUE.
"""
from __future__ import annotations

import errno
import math
import os
import stat
import struct
import time
from typing import TYPE_CHECKING, Any

import trio

from ..lib import protocol as p
from ..lib.errors import SysError
from ..lib.readiness import POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM
from .anon import AnonFile
from .devfs_nodes import S_IFREG, PNode, PseudoFs
from .mounts import Loc
from .parking import park

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import VfsServer

MQUEUE_DEV = os.makedev(0, 0x13)
MQUEUE_MAGIC = 0x19800202
MQ_ATTR = struct.Struct("<qqqq32x")          # mq_flags mq_maxmsg mq_msgsize mq_curmsgs
SIGEVENT_HEAD = struct.Struct("<Qii")        # sigev_value, sigev_signo, sigev_notify
PRIO = struct.Struct("<I")
MQ_PRIO_MAX = 32768
DFLT_MAXMSG, DFLT_MSGSIZE = 10, 8192         # /proc/sys/fs/mqueue/msg_default, msgsize_default
MSG_MAX, MSGSIZE_MAX = 10, 8192              # ... msg_max, msgsize_max (root may exceed)
HARD_MSGMAX, HARD_MSGSIZEMAX = 65536, 16 << 20
QUEUES_MAX = 256
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD = 0, 1, 2


class Mqueue(AnonFile):
    """One queue: messages by priority (highest first, FIFO within one)."""

    seekable = False

    def __init__(self, name: bytes, node: PNode, maxmsg: int, msgsize: int) -> None:
        super().__init__()
        self.name = name
        self.node = node
        self.maxmsg = maxmsg
        self.msgsize = msgsize
        self.msgs: list[tuple[int, bytes]] = []
        self.notify_pid = 0
        self.notify_sig = 0
        self.notify_how = SIGEV_NONE
        self.receivers: list[Any] = []         # parked receives (requests)

    @property
    def qsize(self) -> int:
        return sum(len(m) for _, m in self.msgs)

    def status(self) -> bytes:
        return b"QSIZE:%-10d NOTIFY:%-5d SIGNO:%-5d NOTIFY_PID:%-6d\n" % (
            self.qsize, self.notify_how if self.notify_pid else 0,
            self.notify_sig if self.notify_pid else 0, self.notify_pid)

    def read(self, req: Any, of: Any, count: int, offset: int) -> Any:
        text = self.status()
        at = of.offset if offset < 0 else offset
        data = text[at:at + count]
        if offset < 0:
            of.offset += len(data)
        return p.VfsDataReply(result=len(data), data=data)

    def poll(self, of: Any, events: int) -> int:
        mask = 0
        if self.msgs:
            mask |= POLLIN | POLLRDNORM
        if len(self.msgs) < self.maxmsg:
            mask |= POLLOUT | POLLWRNORM
        return mask & events

    def put(self, prio: int, data: bytes, srv: VfsServer) -> None:
        was_empty = not self.msgs
        i = len(self.msgs)
        while i > 0 and self.msgs[i - 1][0] < prio:
            i -= 1
        self.msgs.insert(i, (prio, data))
        self.receivers[:] = [r for r in self.receivers if not r.replied]
        if was_empty and self.notify_pid and not self.receivers:
            pid, sig, how = self.notify_pid, self.notify_sig, self.notify_how
            self.notify_pid = 0                  # one notification, then unregistered
            if how == SIGEV_SIGNAL and sig:
                srv.send_signal(pid, sig)
        self.q.wake(POLLIN | POLLRDNORM)

    def take(self) -> tuple[int, bytes]:
        prio, data = self.msgs.pop(0)
        self.q.wake(POLLOUT | POLLWRNORM)
        return prio, data


class MqueueFs(PseudoFs):
    """/dev/mqueue: one regular file per queue."""

    kind = "mqueue"
    fstype = b"mqueue"
    source = b"mqueue"
    options = b"rw,nosuid,nodev,noexec,relatime"
    readonly = False
    f_type = MQUEUE_MAGIC

    def __init__(self) -> None:
        super().__init__(MQUEUE_DEV)
        self.root.mode = stat.S_IFDIR | 0o1777
        self.root.data = {}
        self.queues: dict[bytes, Mqueue] = {}
        self._ino = 2

    def content(self, node: PNode, who: Any = None) -> bytes:
        q = node.data
        return q.status() if isinstance(q, Mqueue) else b""

    def create(self, name: bytes, mode: int, uid: int, gid: int, maxmsg: int,
               msgsize: int) -> Mqueue:
        node = PNode(self._ino, S_IFREG | mode, name, self.root, uid=uid, gid=gid)
        node.mtime_ns = time.time_ns()
        self._ino += 1
        q = Mqueue(name, node, maxmsg, msgsize)
        node.data = q
        self.root.data[name] = node
        self.queues[name] = q
        return q

    def remove(self, name: bytes) -> None:
        self.root.data.pop(name, None)
        self.queues.pop(name, None)

    def unlink(self, dir: PNode, name: bytes, *args: Any, **kw: Any) -> None:
        """rm /dev/mqueue/NAME (namei checked the directory, sticky bit included)."""
        if dir is not self.root or name not in self.queues:
            raise SysError(errno.ENOENT)
        self.remove(name)

    def open_host(self, node: PNode, flags: int, who: Any = None) -> int:
        return super().open_host(node, os.O_RDONLY, who)


def install_mqueue(srv: VfsServer) -> None:
    """Mount a fresh mqueue filesystem on devfs's mqueue/ (devfs.py makes it)."""
    fs = MqueueFs()
    srv.mounts.mount(fs, Loc(srv.devfs, srv.devfs.mqueue), b"/dev/mqueue")
    srv.mqueue = fs


# --- the calls ---------------------------------------------------------------------------


def _queue_of(srv: VfsServer, req: Request, fd: int) -> tuple[Any, Mqueue]:
    of = srv.proc(req.caller).get(fd)
    if not isinstance(of.io, Mqueue):
        raise SysError(errno.EBADF)
    return of, of.io


def _may(srv: VfsServer, pid: int, node: PNode, want: int) -> bool:
    fp = srv.procs.get(pid)
    if fp is None or fp.euid == 0:
        return True
    mode = node.mode
    if fp.euid == node.uid:
        bits = mode >> 6
    elif fp.egid == node.gid or node.gid in fp.groups:
        bits = mode >> 3
    else:
        bits = mode
    return want & ~bits & 7 == 0


def _deadline(abs_ns: int) -> float:
    if abs_ns < 0:
        return math.inf
    return trio.current_time() + (abs_ns - time.time_ns()) / 1e9


def _open(srv: VfsServer, req: Request, name: bytes, oflag: int, mode: int,
          attr: bytes) -> int:
    fs: MqueueFs = srv.mqueue
    fp = srv.proc(req.caller)
    if not name:
        raise SysError(errno.ENOENT)
    if b"/" in name:
        raise SysError(errno.EACCES)
    fd = fp.lowest_free()
    acc = oflag & os.O_ACCMODE
    if acc == os.O_ACCMODE:
        raise SysError(errno.EINVAL)
    q = fs.queues.get(name)
    if q is None:
        if not oflag & os.O_CREAT:
            raise SysError(errno.ENOENT)
        root = fp.euid == 0
        if attr:
            _, maxmsg, msgsize, _ = MQ_ATTR.unpack_from(attr)
            if maxmsg <= 0 or msgsize <= 0:
                raise SysError(errno.EINVAL)
            if (maxmsg > (HARD_MSGMAX if root else MSG_MAX)
                    or msgsize > (HARD_MSGSIZEMAX if root else MSGSIZE_MAX)):
                raise SysError(errno.EINVAL)
        else:
            maxmsg, msgsize = DFLT_MAXMSG, DFLT_MSGSIZE
        if len(fs.queues) >= QUEUES_MAX and not root:
            raise SysError(errno.ENOSPC)
        q = fs.create(name, mode & 0o777 & ~fp.umask, fp.euid, fp.egid, maxmsg, msgsize)
    else:
        if oflag & os.O_CREAT and oflag & os.O_EXCL:
            raise SysError(errno.EEXIST)
        want = {os.O_RDONLY: 4, os.O_WRONLY: 2, os.O_RDWR: 6}[acc]
        if not _may(srv, req.caller, q.node, want):
            raise SysError(errno.EACCES)
    of = srv.open_file(fs, q.node, q, acc | (oflag & os.O_NONBLOCK), req=req)
    return fp.install(of, fd, bool(oflag & os.O_CLOEXEC))


def _send(srv: VfsServer, req: Request, fd: int, prio: int, data: bytes, abs_ns: int) -> Any:
    if prio >= MQ_PRIO_MAX or prio < 0:
        raise SysError(errno.EINVAL)
    of, q = _queue_of(srv, req, fd)
    if not of.writable:
        raise SysError(errno.EBADF)
    if len(data) > q.msgsize:
        raise SysError(errno.EMSGSIZE)

    def attempt() -> int | None:
        if len(q.msgs) >= q.maxmsg:
            if of.flags & os.O_NONBLOCK:
                raise SysError(errno.EAGAIN)
            return None
        q.put(prio, data, srv)
        return 0

    got = attempt()
    if got is not None:
        return got
    return park(req, [q.q], attempt, deadline=_deadline(abs_ns),
                on_timeout=lambda: _fail(errno.ETIMEDOUT))


def _fail(err: int) -> Any:
    raise SysError(err)


def _receive(srv: VfsServer, req: Request, fd: int, size: int, abs_ns: int) -> Any:
    of, q = _queue_of(srv, req, fd)
    if not of.readable:
        raise SysError(errno.EBADF)
    if size < q.msgsize:
        raise SysError(errno.EMSGSIZE)
    pid = req.caller

    def attempt() -> p.VfsSysvReply | None:
        if not q.msgs:
            if of.flags & os.O_NONBLOCK:
                raise SysError(errno.EAGAIN)
            return None
        prio, data = q.take()
        out = PRIO.pack(prio) + data
        if len(out) > p.DATA_MAX:
            srv.sysv.outbox[pid] = out
        return p.VfsSysvReply(result=len(data), data=out[:p.DATA_MAX])

    got = attempt()
    if got is not None:
        return got
    q.receivers.append(req)
    return park(req, [q.q], attempt, deadline=_deadline(abs_ns),
                on_timeout=lambda: _fail(errno.ETIMEDOUT))


def _notify(srv: VfsServer, req: Request, fd: int, sev: bytes) -> int:
    pid = req.caller
    signo = how = 0
    if sev:                              # the sigevent first, then the fd (do_mq_notify)
        _, signo, how = SIGEVENT_HEAD.unpack_from(sev)
        if how not in (SIGEV_SIGNAL, SIGEV_NONE):
            raise SysError(errno.EINVAL, "SIGEV_THREAD needs a netlink socket")
        if how == SIGEV_SIGNAL and not 1 <= signo <= 64:
            raise SysError(errno.EINVAL)
    _, q = _queue_of(srv, req, fd)
    if not sev:
        if q.notify_pid == pid:
            q.notify_pid = 0
        return 0
    if q.notify_pid and q.notify_pid != pid and q.notify_pid in srv.procs:
        raise SysError(errno.EBUSY)
    if q.notify_pid == pid:
        raise SysError(errno.EBUSY)
    q.notify_pid, q.notify_sig, q.notify_how = pid, signo, how
    return 0


def _getsetattr(srv: VfsServer, req: Request, fd: int, new: bytes) -> p.VfsSysvReply:
    of, q = _queue_of(srv, req, fd)
    old = MQ_ATTR.pack(of.flags & os.O_NONBLOCK, q.maxmsg, q.msgsize, len(q.msgs))
    if new:
        flags = MQ_ATTR.unpack_from(new)[0]
        if flags & ~os.O_NONBLOCK:
            raise SysError(errno.EINVAL)
        of.flags = (of.flags & ~os.O_NONBLOCK) | flags
    return p.VfsSysvReply(result=0, data=old)


def do_mq(srv: VfsServer, req: Request) -> Any:
    b = req.msg.body
    op = b.op
    if op == p.MQ_OPEN:
        return _open(srv, req, b.path, b.a1, b.a2, b.data)
    if op == p.MQ_UNLINK:
        fs: MqueueFs = srv.mqueue
        q = fs.queues.get(b.path)
        if q is None:
            raise SysError(errno.ENOENT)
        fp = srv.proc(req.caller)
        if fp.euid not in (0, q.node.uid, fs.root.uid):     # sticky /dev/mqueue
            raise SysError(errno.EACCES)                     # (what Linux answers here)
        fs.remove(b.path)
        return 0
    if op == p.MQ_SEND:
        return _send(srv, req, b.fd, b.a1, srv.sysv.take_staged(req.caller, b.data),
                     b.timeout_ns)
    if op == p.MQ_RECEIVE:
        return _receive(srv, req, b.fd, b.a1, b.timeout_ns)
    if op == p.MQ_NOTIFY:
        return _notify(srv, req, b.fd, b.data)
    if op == p.MQ_GETSETATTR:
        return _getsetattr(srv, req, b.fd, b.data)
    raise SysError(errno.EINVAL)
