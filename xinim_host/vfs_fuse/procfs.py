"""procfs at /proc: processes and the system, generated from PM, MM and VFS state.

::

    /proc/self                 -> the caller's pid (XINIM pids throughout)
    /proc/thread-self          -> PID/task/PID (VFS knows processes, not threads:
                                  task/ lists the main thread only)
    /proc/PID/stat status statm cmdline comm environ maps mounts
    /proc/PID/cwd exe root     magic links: namei goes to the place itself
    /proc/PID/fd/N             magic links to the open files of VFS's fd table
    /proc/meminfo uptime loadavg stat cpuinfo filesystems version, mounts -> self/mounts

Which process exists, its ids, state, signals, command and argv: PM
(``ProcList``/``ProcInfo``).  Its address space: MM (``MmMaps``: the maps text
and frame counts).  Its fds, cwd, umask, groups, the mount table: VFS itself.
``exe`` is the file VFS resolved for the process's last execve (the interpreter,
for a ``#!`` script) -- VFS checks every exec, so it records the answer.  A
file's text is generated when it is opened (a snapshot, like one ``read`` of
Linux's seq_file); sizes show as 0, as on Linux.

Peer questions go through :class:`~.procfs_peers.Peers` (synchronous, or a
retried handler when a peer is busy).  Uptime, ``btime`` and start times count
from the VFS's start, which is XINIM's boot.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import posixpath
import stat
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Iterator

from ..lib import protocol as p
from ..lib import sysv_abi as sv
from ..lib.errors import SysError
from ..lib.linux_abi import AT_FDCWD
from . import procfs_files as files
from . import sysctl
from .devfs_nodes import S_IFDIR, S_IFLNK, S_IFREG, Inos, PNode, PseudoFs
from .fdtable import Fproc
from .mounts import Bind, Loc
from .anon import ANONFS
from .pipes import PIPEFS

log = logging.getLogger(__name__)

PROC_DEV = os.makedev(0, 0x16)
PROC_SUPER_MAGIC = 0x9FA0
_S_IFMT = 0o170000
SERVER_PIDS = (p.INIT_PID, p.VFS_PID, p.PM_PID, p.MM_PID)   # kernel-side: no address space
MAX_SEARCH = 200_000               # inodes looked at to name a file opened by a relative path

# /proc/PID entries: name -> (mode, needs MM)
PID_ENTRIES: dict[bytes, int] = {
    b"stat": S_IFREG | 0o444, b"status": S_IFREG | 0o444, b"statm": S_IFREG | 0o444,
    b"cmdline": S_IFREG | 0o444, b"comm": S_IFREG | 0o644, b"environ": S_IFREG | 0o400,
    b"maps": S_IFREG | 0o444, b"mounts": S_IFREG | 0o444, b"mountinfo": S_IFREG | 0o444,
    b"cwd": S_IFLNK | 0o777, b"exe": S_IFLNK | 0o777, b"root": S_IFLNK | 0o777,
    b"fd": S_IFDIR | 0o500, b"task": S_IFDIR | 0o555, b"fdinfo": S_IFDIR | 0o500,
}
_PID_INDEX = {name: i for i, name in enumerate(PID_ENTRIES)}
NET_FILES = (b"unix", b"tcp", b"tcp6", b"udp", b"udp6")
ROOT_FILES = (b"cpuinfo", b"filesystems", b"loadavg", b"meminfo", b"stat", b"uptime",
              b"version")


def _pid_ino(pid: int, low: int = 0) -> int:
    return (pid << 16) | low


class ProcFs(PseudoFs):
    kind = "proc"
    fstype = b"proc"
    source = b"proc"
    options = b"rw,nosuid,nodev,noexec,relatime"
    f_type = PROC_SUPER_MAGIC

    def __init__(self, srv: Any) -> None:
        super().__init__(PROC_DEV)
        self.srv = srv
        self.boot_ns = self.born_ns
        root = self.root
        root.mode = S_IFDIR | 0o555
        root.data = {}
        ino = Inos(2)
        for name in ROOT_FILES:
            root.data[name] = PNode(ino(name), S_IFREG | 0o444, name, root, key=name)
        root.data[b"mounts"] = PNode(ino(b"mounts"), S_IFLNK | 0o777, b"mounts", root,
                                     data=b"self/mounts")
        net = PNode(ino(b"net"), S_IFDIR | 0o555, b"net", root, key=b"netdir", data={})
        for name in NET_FILES:                  # NET's socket tables (net/procnet.py)
            net.data[name] = PNode(ino(b"net/" + name), S_IFREG | 0o444, name, net, key=name)
        root.data[b"net"] = net
        sysdir = PNode(ino(b"sys"), S_IFDIR | 0o555, b"sys", root, key=b"sysdir", data={})
        self.writers = sysctl.writers(srv)      # path -> a root write's effect
        self._writable: dict[PNode, Any] = {}
        for path, read in (files.sysctl_table(srv) | sysctl.readers(srv)).items():
            *dirs, name = path.split(b"/")
            at, where = sysdir, b"sys"
            for d in dirs:
                where += b"/" + d
                sub = at.data.get(d)
                if sub is None:
                    sub = at.data[d] = PNode(ino(where), S_IFDIR | 0o555, d, at, key=b"sysdir",
                                             data={})
                at = sub
            write = self.writers.get(path)
            node = at.data[name] = PNode(ino(where + b"/" + name),
                                         S_IFREG | (0o644 if write else 0o444), name, at,
                                         key=b"sysctl", data=read)
            if write is not None:
                self._writable[node] = write
        root.data[b"sys"] = sysdir
        ipc = PNode(ino(b"sysvipc"), S_IFDIR | 0o555, b"sysvipc", root, key=b"sysvdir", data={})
        for name in (b"msg", b"sem", b"shm"):   # System V IPC (MM's shm, VFS's sem/msg)
            ipc.data[name] = PNode(ino(b"sysvipc/" + name), S_IFREG | 0o444, name, ipc, key=name)
        root.data[b"sysvipc"] = ipc
        self.self_link = PNode(ino(b"self"), S_IFLNK | 0o777, b"self", root, key=b"self")
        self.thread_self = PNode(ino(b"thread-self"), S_IFLNK | 0o777, b"thread-self", root,
                                 key=b"thread-self")
        self._root_fp = Fproc(0, srv.mounts.root)       # root's view, for naming files
        # exe bookkeeping: pid -> (path as given, canonical path, Loc)
        self.exe: dict[int, tuple[bytes, bytes, Loc]] = {}
        self.exe_pending: dict[int, tuple[bytes, bytes, Loc]] = {}
        self.launched: dict[int, bytes] = {}            # started by init without an exec

    # -- facts from the peers ----------------------------------------------------------
    @property
    def peers(self) -> Any:
        return self.srv.peers

    def info(self, pid: int) -> Any:
        """PM's record of ``pid`` (None: no such process)."""
        reply = self.peers.ask(p.PM_PID, p.ProcInfo(caller=0, pid=pid))
        if reply is None:                       # no PM (a VFS alone): what VFS knows
            fp = self.srv.procs.get(pid)
            if fp is None:
                return None
            return SimpleNamespace(
                pid=pid, ppid=0, pgid=pid, sid=pid, state=ord("R"), ruid=fp.uid,
                euid=fp.euid, suid=fp.euid, rgid=fp.gid, egid=fp.egid, sgid=fp.egid,
                threads=1, sigpnd=0, shdpnd=0, blocked=0, ignored=0, caught=0,
                start_ns=self.boot_ns, comm=b"", data=b"", error=0)
        if reply.error:
            if reply.error == errno.ESRCH:
                return None
            raise SysError(reply.error)
        return reply

    def pid_list(self) -> list[p.ProcListEntry]:
        out: list[p.ProcListEntry] = []
        start = 0
        while True:
            reply = self.peers.ask(p.PM_PID, p.ProcList(caller=0, start=start))
            if reply is None:
                return [p.ProcListEntry(pid, 0, pid, pid, fp.uid, 0, 1, "R", "")
                        for pid, fp in sorted(self.srv.procs.items())]
            if reply.error:
                raise SysError(reply.error)
            out.extend(p.decode_proc_list(reply.data))
            if not reply.next or reply.next <= start:
                return out
            start = reply.next

    def mm_maps(self, pid: int) -> tuple[str, Any] | None:
        """MM's map text of ``pid`` and its frame counts (None: MM does not say)."""
        chunks: list[bytes] = []
        got = 0
        reply = None
        for _ in range(4096):
            reply = self.peers.ask(p.MM_PID, p.MmMaps(pid=pid, offset=got))
            if reply is None or reply.error:
                if reply is not None and reply.error not in (errno.ESRCH, errno.EPERM):
                    log.info("MM maps of %d: errno %d", pid, reply.error)
                return None
            chunks.append(reply.data)
            got += len(reply.data)
            if got >= reply.result or not reply.data:
                break
        return b"".join(chunks).decode(errors="replace"), reply

    def facts(self, pid: int, with_mm: bool = True) -> files.ProcFacts:
        info = self.info(pid)
        if info is None:
            raise SysError(errno.ESRCH)
        srv = self.srv
        comm, cmdline = info.comm, info.data
        launched = self.launched.get(pid)
        if launched is not None and comm == b"init" and pid != p.INIT_PID:
            # PM never saw this one exec (xinim-run started it): name it by its file
            comm = posixpath.basename(launched)[:15]
            cmdline = launched + b"\0"
        state = chr(info.state) if info.state else "R"
        if state == "R" and (srv.blocked.get(pid) or pid in SERVER_PIDS):
            state = "S"                          # parked in VFS (a pipe, a terminal), or
                                                 # a server waiting for messages
        f = files.ProcFacts(
            pid=info.pid, ppid=info.ppid, pgid=info.pgid, sid=info.sid, state=state,
            ruid=info.ruid, euid=info.euid, suid=info.suid, rgid=info.rgid,
            egid=info.egid, sgid=info.sgid, threads=max(info.threads, 1),
            sigpnd=info.sigpnd, shdpnd=info.shdpnd, blocked=info.blocked,
            ignored=info.ignored, caught=info.caught, start_ns=info.start_ns or self.boot_ns,
            comm=comm, cmdline=cmdline, kernel_thread=pid in SERVER_PIDS)
        fp = srv.procs.get(pid)
        if fp is not None:
            f.umask = fp.umask
            f.groups = tuple(sorted(fp.groups))
            f.fdsize = max(64, (len(fp.fds) + 63) // 64 * 64)
        ptys = getattr(srv, "ptys", None)
        pty = ptys.of_session(info.sid) if ptys is not None else None
        if pty is not None:
            f.tty_nr, f.tpgid = files.tty_nr(pty.rdev), pty.fg or -1
        elif not f.kernel_thread and f.state != "Z":
            f.tty_nr = files.tty_nr(os.makedev(5, 1))   # the console: everyone's terminal
        if with_mm and not f.kernel_thread and f.state != "Z":
            got = self.mm_maps(pid)
            if got is not None:
                f.maps, reply = got
                f.used, f.shared, f.mapped_pages = reply.used, reply.shared, reply.mapped_pages
        return f

    def net_table(self, what: bytes) -> bytes:
        """/proc/net/WHAT as NET prints it (empty tables when there is no NET)."""
        return self._listing(p.NET_PID, lambda got: p.NetList(what=what, offset=got))

    def _listing(self, server: int, piece: Callable[[int], p.Payload]) -> bytes:
        """A table ``server`` prints, asked for piece by piece (``piece(offset)``; the
        reply's result is the whole size): what came before it stopped answering."""
        chunks: list[bytes] = []
        got = 0
        for _ in range(4096):
            reply = self.peers.ask(server, piece(got))
            if reply is None or reply.error:
                break
            chunks.append(reply.data)
            got += len(reply.data)
            if got >= reply.result or not reply.data:
                break
        return b"".join(chunks)

    def sysvipc(self, what: bytes) -> bytes:
        """/proc/sysvipc/WHAT: shm is MM's table, sem and msg the VFS's own."""
        if what != b"shm":
            return self.srv.sysv.listing(what)
        return (self._listing(p.MM_PID, lambda got: p.MmShmList(offset=got))
                or sv.SHM_HEADER.encode())

    @staticmethod
    def caller(who: Fproc | None) -> int:
        """The pid /proc/self names: the caller's (ENOENT when nobody in XINIM asks)."""
        if who is None:
            raise SysError(errno.ENOENT)
        return who.pid

    def _may_peek(self, pid: int, who: Fproc | None) -> None:
        """ptrace-style access (cwd, exe, fd, environ): root or the same user."""
        me = who
        if me is None or me.euid == 0 or me.pid == pid:
            return
        them = self.srv.procs.get(pid)
        if them is not None and them.uid == me.euid and them.euid == me.euid:
            return
        raise SysError(errno.EACCES)

    # -- the tree ------------------------------------------------------------------------
    def _pid_dir(self, pid: int, info: Any) -> PNode:
        node = PNode(_pid_ino(pid), S_IFDIR | 0o555, b"%d" % pid, self.root,
                     uid=info.euid, gid=info.egid, data=pid, key=b"pid")
        node.mtime_ns = info.start_ns
        return node

    def _pid_entry(self, dir: PNode, name: bytes) -> PNode | None:
        mode = PID_ENTRIES.get(name)
        if mode is None:
            return None
        low = (0x100 if dir.key == b"pid" else 0x4100) + _PID_INDEX[name]
        node = PNode(_pid_ino(dir.data, low), mode, name, dir,
                     uid=dir.uid, gid=dir.gid, data=dir.data, key=name)
        node.mtime_ns = dir.mtime_ns
        return node

    def _tid_dir(self, task: PNode) -> PNode:
        node = PNode(_pid_ino(task.data, 0x2000), S_IFDIR | 0o555, b"%d" % task.data, task,
                     uid=task.uid, gid=task.gid, data=task.data, key=b"tid")
        node.mtime_ns = task.mtime_ns
        return node

    def _fd_entry(self, dir: PNode, fd: int, of: Any) -> PNode:
        acc = of.flags & os.O_ACCMODE
        perm = 0o500 if acc == os.O_RDONLY else 0o300 if acc == os.O_WRONLY else 0o700
        node = PNode(_pid_ino(dir.data, 0x1000 + fd), S_IFLNK | perm, b"%d" % fd, dir,
                     uid=dir.uid, gid=dir.gid, data=(dir.data, fd), key=b"fdlink")
        node.mtime_ns = dir.mtime_ns
        return node

    def _fdinfo_entry(self, dir: PNode, fd: int) -> PNode:
        node = PNode(_pid_ino(dir.data, 0x3000 + fd), S_IFREG | 0o400, b"%d" % fd, dir,
                     uid=dir.uid, gid=dir.gid, data=(dir.data, fd), key=b"fdinfo-n")
        node.mtime_ns = dir.mtime_ns
        return node

    def fdinfo(self, pid: int, fd: int) -> bytes:
        """/proc/PID/fdinfo/N, as Linux's seq_show: position, flags (close-on-exec as
        O_CLOEXEC), mount id, inode, then what the file adds (epoll items, counters)."""
        fp = self.srv.procs.get(pid)
        of = fp.fds[fd] if fp is not None and fd < len(fp.fds) else None
        if of is None:
            return b""
        flags = of.flags | (os.O_CLOEXEC if fp.cloexec[fd] else 0)
        st = of.fs.stat_reply(of.node, who=fp)
        extra = getattr(of.io, "fdinfo", None)
        return (b"pos:\t%d\nflags:\t0%o\nmnt_id:\t%d\nino:\t%d\n"
                % (of.offset, flags, 0, st.ino)) + (extra(of) if extra is not None else b"")

    def children(self, dir: PNode, who: Fproc | None = None) -> Iterable[tuple[bytes, PNode]]:
        key = dir.key
        if dir is self.root:
            out = list(self.root.data.items())
            out.append((b"self", self.self_link))
            out.append((b"thread-self", self.thread_self))
            for entry in self.pid_list():
                info = SimpleNamespace(euid=entry.uid, egid=0, start_ns=0)
                fp = self.srv.procs.get(entry.pid)
                if fp is not None:
                    info.egid = fp.egid
                node = self._pid_dir(entry.pid, info)
                out.append((node.name, node))
            return out
        if key in (b"netdir", b"sysdir", b"sysvdir"):
            return list(dir.data.items())
        if key == b"pid":
            return [(name, self._pid_entry(dir, name)) for name in PID_ENTRIES]
        if key == b"tid":
            return [(name, self._pid_entry(dir, name)) for name in PID_ENTRIES
                    if name != b"task"]
        if key == b"task":
            if self.info(dir.data) is None:
                return []
            node = self._tid_dir(dir)
            return [(node.name, node)]
        if key == b"fd":
            self._may_peek(dir.data, who)
            fp = self.srv.procs.get(dir.data)
            if fp is None:
                return []
            return [(b"%d" % fd, self._fd_entry(dir, fd, of))
                    for fd, of in enumerate(fp.fds) if of is not None]
        if key == b"fdinfo":
            self._may_peek(dir.data, who)
            fp = self.srv.procs.get(dir.data)
            if fp is None:
                return []
            return [(b"%d" % fd, self._fdinfo_entry(dir, fd))
                    for fd, of in enumerate(fp.fds) if of is not None]
        return ()

    def child(self, dir: PNode, name: bytes, who: Fproc | None = None) -> PNode | None:
        if dir is self.root:
            node = self.root.data.get(name)
            if node is not None:
                return node
            if name == b"self":
                return self.self_link
            if name == b"thread-self":
                return self.thread_self
            if name.isdigit() and (name[:1] != b"0"):
                pid = int(name)
                info = self.info(pid) if pid < (1 << 31) else None
                return self._pid_dir(pid, info) if info is not None else None
            return None
        key = dir.key
        if key in (b"netdir", b"sysdir", b"sysvdir"):
            return dir.data.get(name)
        if key in (b"pid", b"tid"):
            if self.info(dir.data) is None or (key == b"tid" and name == b"task"):
                return None                      # gone since the lookup of /proc/PID
            return self._pid_entry(dir, name)
        if key == b"task":
            if name != b"%d" % dir.data or self.info(dir.data) is None:
                return None
            return self._tid_dir(dir)
        if key in (b"fd", b"fdinfo"):
            if not name.isdigit() or (name[:1] == b"0" and name != b"0"):
                return None
            self._may_peek(dir.data, who)
            fp = self.srv.procs.get(dir.data)
            fd = int(name)
            if fp is None or fd >= len(fp.fds) or fp.fds[fd] is None:
                return None
            if key == b"fdinfo":
                return self._fdinfo_entry(dir, fd)
            return self._fd_entry(dir, fd, fp.fds[fd])
        return None

    def nlink(self, node: PNode) -> int:
        if node is self.root:
            return 2 + len(self.srv.procs)
        if node.key in (b"pid", b"tid"):
            return 4 if node.key == b"pid" else 3
        return 2 if node.mode & _S_IFMT == S_IFDIR else 1

    # -- links ---------------------------------------------------------------------------
    def link_target(self, node: PNode, who: Fproc | None = None) -> bytes:
        key = node.key
        if key == b"self":
            return b"%d" % self.caller(who)
        if key == b"thread-self":
            pid = self.caller(who)
            return b"%d/task/%d" % (pid, pid)
        if key is None:
            return super().link_target(node, who)
        if key == b"root":
            self._may_peek(node.data, who)
            return b"/"
        loc = self.magic(node, who)
        if key == b"exe":
            return self.exe[node.data][1]
        if key == b"cwd":
            return self.srv.namei.path_of(loc)
        if key == b"fdlink":
            pid, fd = node.data
            return self.fd_path(self.srv.procs[pid].fds[fd])
        raise SysError(errno.EINVAL)

    def magic(self, node: PNode, who: Fproc | None = None) -> Any:
        key = node.key
        if key not in (b"cwd", b"exe", b"root", b"fdlink"):
            return None
        srv = self.srv
        if key == b"fdlink":
            pid, fd = node.data
        else:
            pid = node.data
        self._may_peek(pid, who)
        if key == b"exe":
            rec = self.exe.get(pid)
            if rec is None:
                raise SysError(errno.ENOENT)
            return rec[2]
        fp = srv.procs.get(pid)
        if fp is None:
            raise SysError(errno.ENOENT)
        if key == b"cwd":
            return fp.cwd
        if key == b"root":
            return srv.mounts.root
        of = fp.fds[fd] if fd < len(fp.fds) else None
        if of is None:
            raise SysError(errno.ENOENT)
        return Loc(of.fs, of.node)

    @staticmethod
    def rofs(node: PNode) -> bool:
        """A write open is EROFS but for /proc/sys files (EACCES unless writable)."""
        return node.key != b"sysctl"

    def writer(self, node: PNode) -> Any:
        """A write's effect on a root-writable /proc/sys file (None: read-only)."""
        return self._writable.get(node)

    # -- contents ------------------------------------------------------------------------
    def content(self, node: PNode, who: Fproc | None = None) -> bytes:
        key = node.key
        if key == b"sysctl":
            return node.data()
        if node.parent is self.root:
            make = _ROOT_TEXT.get(key)
        elif node.parent is not None and node.parent.key == b"netdir":
            return self.net_table(node.name)
        elif node.parent is not None and node.parent.key == b"sysvdir":
            return self.sysvipc(node.name)
        else:
            make = _PID_TEXT.get(key)
            if key == b"environ":
                self._may_peek(node.data, who)
        if key == b"fdinfo-n":
            return self.fdinfo(*node.data)
        if make is None:
            return b""
        return make(self, node.data)

    # -- names of open files -------------------------------------------------------------
    def fd_path(self, of: Any) -> bytes:
        """What /proc/PID/fd/N reads: the file's path now, ``pipe:[ino]``, or the
        path it was opened by with `` (deleted)``."""
        fs, node = of.fs, of.node
        if fs is PIPEFS:
            return b"pipe:[%d]" % node.ino
        if fs is ANONFS:
            return b"anon_inode:" + node.name
        if fs.kind == "sockfs":
            return b"socket:[%d]" % node.ino
        return self.file_path(Loc(fs, node), of.path)

    def file_path(self, loc: Loc, hint: bytes = b"") -> bytes:
        fs, node = loc
        namei = self.srv.namei
        if fs.kind != "ramfs" or fs.mode(node) & _S_IFMT == S_IFDIR:
            try:
                return namei.path_of(loc)
            except SysError:
                return (hint or b"?") + b" (deleted)"
        if node.nlink == 0:
            return (hint or b"?") + b" (deleted)"
        if hint[:1] == b"/":
            try:
                nd = namei.lookup(self._root_fp, AT_FDCWD, hint, parent=True)
                nd, found = namei.follow_last(self._root_fp, nd)
                if found is not None and found.node is node:
                    base = namei.path_of(nd.loc)
                    return base.rstrip(b"/") + b"/" + nd.last
            except SysError:
                pass
        return self._search(node) or (hint or b"?")

    def _search(self, target: Any) -> bytes | None:
        """Where in the ramfs ``target`` has a name (a file renamed since it was
        opened): breadth first, bounded."""
        srv = self.srv
        todo = [(srv.ramfs.root, b"")]
        seen = 0
        while todo and seen < MAX_SEARCH:
            nxt = []
            for dir, path in todo:
                for name, inode in dir.entries.items():
                    seen += 1
                    if inode is target:
                        return self.srv.namei.path_of(Loc(srv.mounts.root_fs, dir)).rstrip(
                            b"/") + b"/" + name
                    if inode.is_dir:
                        nxt.append((inode, path + b"/" + name))
            todo = nxt
        return None

    def canonical(self, fp: Fproc, dirfd: int, path: bytes) -> tuple[bytes, Loc] | None:
        """The canonical path of what ``path`` names for ``fp`` (symlinks resolved)."""
        namei = self.srv.namei
        try:
            nd = namei.lookup(fp, dirfd, path, parent=True)
            nd, loc = namei.follow_last(fp, nd)
            if loc is None:
                return None
            if loc.fs.kind == "ramfs" and loc.fs.mode(loc.node) & _S_IFMT != S_IFDIR:
                child = namei.child(nd)
                if child is not None and child.node is loc.node:
                    return namei.path_of(nd.loc).rstrip(b"/") + b"/" + nd.last, loc
                return self.file_path(loc), loc
            return self.file_path(loc), loc
        except SysError:
            return None

    # -- books the VFS's handlers keep here (exe, paths of opened files) ----------------
    # Called after the call succeeded; bookkeeping never fails a call (_books).
    def opened(self, fp: Fproc, dirfd: int, path: bytes, fd: int) -> None:
        """open(2) made ``fd``: remember where a relative path started (fd links
        name the file later)."""
        if path[:1] == b"/" or not path or fd < 0:
            return                                   # (before _books: the common case)
        with _books("open"):
            if fd >= len(fp.fds) or fp.fds[fd] is None:
                return
            namei = self.srv.namei
            try:
                base = namei.path_of(namei.start(fp, dirfd, path))
            except SysError:
                return
            fp.fds[fd].path = base.rstrip(b"/") + b"/" + path

    def exec_checked(self, fp: Fproc, dirfd: int, path: bytes, loc: Loc | None = None) -> None:
        """VFS_EXEC_OPEN passed: the file /proc/PID/exe shows once the exec commits.
        ``loc``: what the check resolved ``path`` to (a host file's path follows from
        it; a ramfs file's name is looked up again, for its hard links)."""
        with _books("exec check"):
            if not path:
                return
            if loc is not None and loc.fs.kind != "ramfs":
                found: tuple[bytes, Loc] | None = (self.file_path(loc), loc)
            else:
                found = self.canonical(fp, dirfd, path)
            if found is not None:
                self.exe_pending[fp.pid] = (path, found[0], found[1])

    def forked(self, parent: int, child: int) -> None:
        with _books("fork"):
            rec = self.exe.get(parent)
            if parent == p.INIT_PID:
                rec = self.exe_pending.get(p.INIT_PID, rec)
                if rec is not None:
                    self.launched[child] = rec[0]
            if rec is not None:
                self.exe[child] = rec
            else:
                self.exe.pop(child, None)

    def execed(self, pid: int) -> None:
        with _books("exec"):
            rec = self.exe_pending.pop(pid, None)
            if rec is not None:
                self.exe[pid] = rec
            self.launched.pop(pid, None)

    def exited(self, pid: int) -> None:
        for table in (self.exe, self.exe_pending, self.launched):
            table.pop(pid, None)

    # -- the mount table ---------------------------------------------------------------
    def mount_rows(self) -> list[tuple[bytes, bytes, bytes, bytes]]:
        rows = []
        for xpath, fs in self.srv.mounts.mounts:
            if getattr(fs, "own_readonly", None) is not None:    # mount(2)'s (mount_calls)
                rows.append((fs.source, xpath, fs.fstype, fs.options))
            elif type(fs) is Bind:
                rows.append((b"ramfs" if fs.loc.fs.kind == "ramfs" else b"none", xpath,
                             fs.loc.fs.kind.encode() if fs.loc.fs.kind != "host" else b"hostfs",
                             b"rw,nosuid,nodev,bind"))
            elif fs.kind == "ramfs":
                rows.append((b"ramfs", xpath, b"ramfs", b"rw"))
            elif fs.kind == "host":
                rows.append((fs.host_root, xpath, b"hostfs",
                             b"ro" if fs.readonly else b"rw"))
            else:
                rows.append((getattr(fs, "source", b"none"), xpath,
                             getattr(fs, "fstype", fs.kind.encode()),
                             getattr(fs, "options", b"rw")))
        return rows


# --- the texts, by entry name ---------------------------------------------------------

def _pid_stat(fs: ProcFs, pid: int) -> bytes:
    return files.stat_text(fs.facts(pid), fs.boot_ns)


def _pid_status(fs: ProcFs, pid: int) -> bytes:
    rec = fs.exe.get(pid)
    return files.status_text(fs.facts(pid), rec[1] if rec else b"", files.ncpus())


def _pid_statm(fs: ProcFs, pid: int) -> bytes:
    return files.statm_text(fs.facts(pid))


def _pid_cmdline(fs: ProcFs, pid: int) -> bytes:
    f = fs.facts(pid, with_mm=False)
    return b"" if f.state == "Z" else f.cmdline


def _pid_comm(fs: ProcFs, pid: int) -> bytes:
    return fs.facts(pid, with_mm=False).comm + b"\n"


def _pid_environ(fs: ProcFs, pid: int) -> bytes:
    if fs.info(pid) is None:
        raise SysError(errno.ESRCH)
    return b""                     # PM keeps no environment (see the README)


def _pid_maps(fs: ProcFs, pid: int) -> bytes:
    if fs.info(pid) is None:
        raise SysError(errno.ESRCH)
    if pid in SERVER_PIDS:
        return b""
    got = fs.mm_maps(pid)
    return got[0].encode() if got is not None else b""


def _mounts(fs: ProcFs, pid: Any = None) -> bytes:
    return files.mounts_text(fs.mount_rows())


def _mountinfo(fs: ProcFs, pid: Any = None) -> bytes:
    """proc(5)'s mountinfo: ids in mount order, each mount's parent the mount
    holding its mount point (the longest path prefix)."""
    rows = fs.mount_rows()
    out = []
    paths = [row[1] for row in rows]
    for i, (source, target, fstype, opts) in enumerate(rows):
        parent = i
        best = -1
        for j, other in enumerate(paths[:i]):
            pre = other.rstrip(b"/") + b"/"
            if (target.startswith(pre) or other == b"/") and len(other) > best:
                parent, best = j, len(other)
        mnt = next((m for x, m in fs.srv.mounts.mounts if x == target), None)
        dev = getattr(mnt, "dev", 0) or 0
        per = b",".join(o for o in opts.split(b",") if o in (b"rw", b"ro", b"nosuid", b"nodev",
                                                          b"noexec", b"relatime"))
        out.append(b"%d %d %d:%d / %s %s - %s %s %s\n" % (
            20 + i, 20 + parent, os.major(dev), os.minor(dev), target, per or b"rw", fstype,
            source, opts))
    return b"".join(out)


def _loadavg(fs: ProcFs, _: Any) -> bytes:
    procs = fs.pid_list()
    running = sum(1 for e in procs if e.state == "R") or 1
    return files.loadavg_text(running, len(procs), max((e.pid for e in procs), default=0))


def _stat(fs: ProcFs, _: Any) -> bytes:
    procs = fs.pid_list()
    running = sum(1 for e in procs if e.state == "R") or 1
    forks = max((e.pid for e in procs), default=0)
    return files.stat_sys_text(fs.boot_ns, forks, running, 0)


_PID_TEXT: dict[bytes, Callable[[ProcFs, Any], bytes]] = {
    b"stat": _pid_stat, b"status": _pid_status, b"statm": _pid_statm,
    b"cmdline": _pid_cmdline, b"comm": _pid_comm, b"environ": _pid_environ,
    b"maps": _pid_maps, b"mounts": _mounts, b"mountinfo": _mountinfo,
}
_ROOT_TEXT: dict[bytes, Callable[[ProcFs, Any], bytes]] = {
    b"cpuinfo": lambda fs, _: files.cpuinfo_text(),
    b"filesystems": lambda fs, _: files.FILESYSTEMS,
    b"loadavg": _loadavg,
    b"meminfo": lambda fs, _: files.meminfo_text(),
    b"stat": _stat,
    b"uptime": lambda fs, _: files.uptime_text(fs.boot_ns),
    b"version": lambda fs, _: files.version_text(),
}


@contextlib.contextmanager
def _books(what: str) -> Iterator[None]:
    """Bookkeeping after a call that succeeded must never fail it: log instead."""
    try:
        yield
    except Exception:
        log.exception("procfs books after %s failed", what)


def install_procfs(srv: Any) -> ProcFs:
    """Mount a procfs on the ramfs directory /proc (which ``srv`` has made)."""
    ramfs = srv.ramfs
    at = ramfs.lookup(ramfs.root, b"proc")
    if not stat.S_ISDIR(at.mode):
        raise SysError(errno.ENOTDIR, "/proc must be a ramfs directory")
    procfs = ProcFs(srv)
    srv.mounts.mount(procfs, Loc(srv.mounts.root_fs, at), b"/proc")
    srv.procfs = procfs
    return procfs

