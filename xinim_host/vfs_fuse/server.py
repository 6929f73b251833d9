"""The VFS server (XINIM PID 2): the file namespace, fd tables, pipes, devices.

Its call vector is :data:`~.table.CALL_VECTOR`; handlers live in ``handlers_*``.
This module holds the server's state and the services handlers share: the
process table, open file descriptions, and the registry of blocked calls (so a
signal or an exit can take a parked call back).
"""
from __future__ import annotations

import errno
import logging
import os
from typing import Any, Awaitable, Iterable

import trio

from ..lib.errors import SysError
from ..lib.ipc import Lattice
from ..lib.linux_abi import AT_FDCWD
from ..lib.protocol import INIT_PID, PM_PID, VFS_PID, VFS_REPLY, ProcKill
from ..lib.server import Request, Server
from .devfs import install_devfs
from .devfs_nodes import DeviceAlias
from .devices import ConsoleDevice, make_devices
from .epoll import forget_file
from .inotify import InotifyHub
from .signalfd import SigfdBook
from .fdtable import Fproc, OpenFile
from .hostfs import HostFs
from .handlers_space import MemfdIO, new_seal_table
from .locks import LockTable
from .mounts import DEFAULT_MOUNTS, Loc, MountTable, RamFileIO
from .namei import Namei
from .procfs import install_procfs
from .procfs_peers import Peers, bind_call_vector
from .pipes import PIPE_MAX_SIZE
from .ramfs import Ramfs
from .mount_calls import clean_leftovers
from .mqueue import install_mqueue
from .sysv import SysvIpc
from .table import CALL_VECTOR

log = logging.getLogger(__name__)

MountSpec = tuple[str, str, str]      # (host path, XINIM path, "ro" | "rw")

# the ramfs directories every boot makes sure of (path, mode when made)
INITIAL_TREE: tuple[tuple[bytes, int], ...] = (
    (b"/tmp", 0o1777), (b"/var", 0o755), (b"/var/tmp", 0o1777), (b"/root", 0o700),
    (b"/home", 0o755), (b"/run", 0o755), (b"/mnt", 0o755), (b"/dev", 0o755),
    (b"/dev/shm", 0o1777), (b"/proc", 0o555),
)


class _TaskBlocker:
    """A blocked async call (console read, poll): cancelling cancels its scope."""

    __slots__ = ("scope", "err")

    def __init__(self) -> None:
        self.scope: trio.CancelScope | None = None
        self.err = 0

    def cancel(self, err: int) -> None:
        self.err = err
        if self.scope is not None:
            self.scope.cancel()


class VfsServer(Server):
    """``VfsServer(lattice, console=..., mounts=[(host, xinim, "ro"|"rw"), ...])``.

    ``ramfs`` may be passed to share one tree with the FUSE export (or an image
    loaded before boot); by default a fresh one is made.  ``mounts`` None means
    :data:`~.mounts.DEFAULT_MOUNTS`; host directories that do not exist are
    skipped with a warning.  Process 1 starts with fds 0, 1, 2 on the console.
    """

    # Slots for the VFS's own state: CPython 3.11 keeps at most 29 attributes of an
    # instance in its fast shared-keys layout; past that (the VFS had 34) every
    # ``srv.x`` and ``srv.method()`` of every handler took the slow lookup (~20 ns
    # each).  An attribute set elsewhere still works: the base class has a __dict__.
    __slots__ = ("ramfs", "journal", "mounts", "namei", "console", "console_err",
                 "node_consoles", "devices", "ram_io", "procs", "fifos", "write_opens",
                 "sigfds", "inotify", "peers", "locks", "seals", "memfd_io", "sockets",
                 "inflight", "sysv", "next_token", "devfs", "devpts", "ptys", "mqueue",
                 "procfs")

    pid = VFS_PID
    reply_type = VFS_REPLY
    # bound: retries a handler whose procfs/devfs question to PM or MM was answered
    # later -- see procfs_peers
    handlers = bind_call_vector(CALL_VECTOR)

    def __init__(self, lattice: Lattice, *, console: Any = None, console_err: Any = None,
                 mounts: Iterable[MountSpec] | None = None, ramfs: Ramfs | None = None) -> None:
        super().__init__(lattice)
        self.ramfs = ramfs if ramfs is not None else Ramfs()
        self.journal: Any = None    # journal.Journal under --image: fsync waits for it
        self.mounts = MountTable(self.ramfs)
        self.namei = Namei(self.mounts)
        self.console = console
        # Where init's fd 2 writes when it is not the console's own stream (a
        # xinim-run whose stdout and stderr go to different places).
        self.console_err = ConsoleDevice(console_err) if console_err is not None else None
        self.node_consoles: dict[int, tuple[Any, Any]] = {}   # joined node -> (out, err)
        self.devices = make_devices(console)
        self.ram_io = RamFileIO(self.ramfs)
        self.procs: dict[int, Fproc] = {}
        self.fifos: dict[Any, Any] = {}          # FIFO vnode -> its Pipe while open
        self.write_opens: dict[Any, int] = {}    # ramfs inode -> open-for-write count (ETXTBSY)
        self.sigfds = SigfdBook()                # pending signals PM reported (signalfd)
        self.inotify = InotifyHub(self.ramfs)    # inotify: the ramfs's changes, from both sides
        self.peers = Peers(self)                 # VFS's questions to PM and MM
        self.locks = LockTable(self)             # flock, record locks, leases
        self.seals = new_seal_table()            # memfd inode -> F_SEAL_* bits
        self.memfd_io = MemfdIO(self.ramfs, self.seals)
        self.sockets: dict[int, Any] = {}        # NET socket id -> its proxy (sockets.py)
        self.inflight: dict[int, OpenFile] = {}  # SCM_RIGHTS token -> held description
        self.sysv = SysvIpc(self)                # System V semaphores, message queues
        self.next_token = 0
        self._populate()
        self._mount_all(DEFAULT_MOUNTS if mounts is None else mounts)
        self._start_init()

    # -- boot -------------------------------------------------------------------------
    def _mkdirs(self, path: bytes, mode: int = 0o755) -> Loc:
        """mkdir -p in the ramfs part of the tree (as root); returns the directory."""
        loc = self.mounts.root
        for name in (c for c in path.split(b"/") if c):
            fs, node = loc
            try:
                child = fs.lookup(node, name)
            except SysError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                child = fs.mkdir(node, name, mode, 0, 0)
            loc = self.mounts.cross(Loc(fs, child))
        return loc

    def _populate(self) -> None:
        """The initial tree (README "The XINIM file tree") -- directories the ramfs
        lacks are made -- then devfs on /dev, devpts on /dev/pts, the ramfs's
        /dev/shm bound on /dev/shm, procfs on /proc."""
        for path, mode in INITIAL_TREE:
            self._mkdirs(path, mode)
        install_devfs(self)
        install_mqueue(self)
        install_procfs(self)
        clean_leftovers(self)                   # tmpfs trees of an earlier run (--image)

    def _mount_all(self, specs: Iterable[MountSpec]) -> None:
        for spec in specs:
            host, xinim, how = (tuple(spec) + ("ro",))[:3]
            if how not in ("ro", "rw"):
                raise ValueError(f"mount {spec!r}: mode must be 'ro' or 'rw'")
            if not os.path.isdir(host):
                log.warning("mount %s -> %s skipped: no such host directory", host, xinim)
                continue
            xpath = os.fsencode(xinim)
            try:
                at = self._mkdirs(xpath)
            except SysError as exc:           # e.g. below a read-only mount, not there
                log.warning("mount %s -> %s skipped: %s", host, xinim, exc)
                continue
            self.mounts.mount(HostFs(host, readonly=(how == "ro")), at, xpath)

    def _start_init(self) -> None:
        """PID 1: root, cwd /, fds 0 1 2 sharing one O_RDWR description of /dev/console."""
        fp = self.new_proc(INIT_PID)
        cons = self.namei.resolve(fp, AT_FDCWD, b"/dev/console")
        of = self.open_file(cons.fs, cons.node, self.devices[cons.node.rdev], os.O_RDWR)
        of.refs += 1
        fp.install(of, 0, False)
        fp.install(of, 1, False)
        if self.console_err is not None:
            # its own node, so that reopening fd 2 (/dev/stderr) reaches our stderr
            of = self.open_file(cons.fs, DeviceAlias(cons.node, self.console_err),
                                self.console_err, os.O_RDWR)
        else:
            of.refs += 1
        fp.install(of, 2, False)

    def new_proc(self, pid: int) -> Fproc:
        root = self.mounts.root
        root.fs.hold(root.node)
        fp = Fproc(pid, root)
        self.procs[pid] = fp
        return fp

    def stop(self) -> None:
        """Close every host fd (tests and shutdown)."""
        for pid in list(self.procs):
            self.exit_proc(pid)
        self.ramfs.sync_caches()                # MAP_SHARED mappers' last stores
        self.mounts.close()

    def send_reply(self, request: Any, body: Any) -> None:
        # A FUSE export caches names and attributes in the host kernel: a call
        # that changed what it caches answers once the kernel has been told
        # (Ramfs.after_published); nothing pending -- the usual case -- is one test.
        if self.ramfs.fences and self.ramfs.after_published(
                lambda: Server.send_reply(self, request, body)):
            return
        Server.send_reply(self, request, body)

    # -- processes --------------------------------------------------------------------
    def proc(self, pid: int) -> Fproc:
        fp = self.procs.get(pid)
        if fp is None:
            raise SysError(errno.ESRCH)
        return fp

    def fork_proc(self, parent: int, child: int) -> Fproc:
        pp = self.proc(parent)
        if child in self.procs:
            self.exit_proc(child)               # a stale entry under a reused pid
        cwd = pp.cwd
        cwd.fs.hold(cwd.node)
        fp = Fproc(child, cwd, list(pp.fds), list(pp.cloexec), pp.umask, pp.uid, pp.euid,
                   pp.gid, pp.egid, pp.groups, pp.nofile, dict(pp.hidden), pp.root)
        fp.fsize = pp.fsize
        if pp.root is not None:
            pp.root.fs.hold(pp.root.node)
        for of in fp.fds:
            if of is not None:
                of.refs += 1
        for of in fp.hidden.values():
            of.refs += 1
        self.procs[child] = fp
        return fp

    def exit_proc(self, pid: int) -> None:
        fp = self.proc(pid)
        self.cancel_blocked(pid, errno.EINTR)
        for fd, of in enumerate(fp.fds):
            if of is not None:
                fp.fds[fd] = None
                self.locks.closed(pid, of)
                self.drop(of)
        fp.fds.clear()
        fp.cloexec.clear()
        for fd in list(fp.hidden):
            self.drop(fp.hidden.pop(fd))
        fp.cwd.fs.release(fp.cwd.node)
        if fp.root is not None:
            fp.root.fs.release(fp.root.node)
        del self.procs[pid]
        self.sigfds.forget(pid)
        self.sysv.exited(pid)                   # SEM_UNDO

    def exec_proc(self, pid: int) -> None:
        fp = self.proc(pid)
        for fd in [fd for fd, close in enumerate(fp.cloexec) if close]:
            if fd < len(fp.fds) and fp.fds[fd] is not None:
                self.close_fd(fp, fd)
        for fd in list(fp.hidden):               # the old image's maps are gone
            self.drop(fp.hidden.pop(fd))

    def set_root(self, fp: Fproc, loc: Loc) -> None:
        """chroot(2): ``loc`` is ``fp``'s '/' from now on (the system root: None)."""
        loc.fs.hold(loc.node)
        old = fp.root
        fp.root = None if loc == self.mounts.root else loc
        if fp.root is None:
            loc.fs.release(loc.node)
        if old is not None:
            old.fs.release(old.node)

    def set_cwd(self, fp: Fproc, loc: Loc) -> None:
        loc.fs.hold(loc.node)
        old = fp.cwd
        fp.cwd = loc
        old.fs.release(old.node)

    # -- open file descriptions ----------------------------------------------------------
    def open_file(self, fs: Any, node: Any, io: Any, flags: int, hfd: int = -1,
                  req: Request | None = None) -> OpenFile:
        """A new open file description; ``req`` is the open(2) that makes it (None for
        the ones the VFS makes itself): devices see who opens them (/dev/tty, ptys)."""
        of = OpenFile(fs, node, io, flags, hfd=hfd)
        fs.hold(node)
        if io is not None:
            io.open(req, of)
        if fs.kind == "ramfs" and of.writable:
            self.write_opens[node] = self.write_opens.get(node, 0) + 1
        if self.inotify.watches and fs.kind == "ramfs":
            self.ramfs.accessed("open", node)
        return of

    def drop(self, of: OpenFile) -> None:
        """One reference fewer; the last one closes the description."""
        of.refs -= 1
        if of.refs:
            return
        if of.epitems:
            forget_file(of)                     # epoll watches descriptions, not fds
        if self.inotify.watches and of.fs.kind == "ramfs":
            self.ramfs.accessed("close-write" if of.writable else "close-nowrite", of.node)
        try:
            self.locks.released(of)
            if of.io is not None:
                of.io.close(of)
            elif of.hfd >= 0:
                os.close(of.hfd)
                of.hfd = -1
        finally:
            if of.fs.kind == "ramfs" and of.writable:
                left = self.write_opens.get(of.node, 1) - 1
                if left:
                    self.write_opens[of.node] = left
                else:
                    self.write_opens.pop(of.node, None)
            of.fs.release(of.node)

    def close_fd(self, fp: Fproc, fd: int) -> None:
        of = fp.take(fd)
        self.locks.closed(fp.pid, of)       # any close drops the process's record locks
        self.drop(of)

    # -- signals and timers (leases) ---------------------------------------------------
    lease_break_time = 45.0        # seconds; /proc/sys/fs/lease-break-time
    pipe_max_size = PIPE_MAX_SIZE  # /proc/sys/fs/pipe-max-size (root may write it: sysctl.py)
    domainname = b"(none)"         # /proc/sys/kernel/domainname

    def send_signal(self, pid: int, sig: int) -> None:
        """Have PM signal ``pid`` (a lease break); the answer is not waited for."""
        if not self.peers.connected(PM_PID):
            return
        try:
            self.lattice.call(VFS_PID, PM_PID, ProcKill(caller=VFS_PID, pid=pid, sig=sig))
        except SysError as exc:
            log.info("VFS: signal %d to %d: %s", sig, pid, exc)

    def after(self, seconds: float, fn: Any) -> None:
        """Run ``fn`` once, ``seconds`` from now (a deadline, not a poll)."""
        if self.nursery is None:
            return

        async def timer() -> None:
            await trio.sleep(seconds)
            fn()
        self.nursery.start_soon(timer)

    # -- blocked calls (registry in lib/server.py) ----------------------------------------
    async def interruptible(self, req: Request, awaitable: Awaitable[Any]) -> Any:
        """Await ``awaitable`` for ``req``; VFS_CANCEL/exit of the caller makes the call
        fail with the errno given there (EINTR)."""
        blocker = _TaskBlocker()
        with trio.CancelScope() as scope:
            blocker.scope = scope
            self.block(req.caller, blocker)
            try:
                return await awaitable
            finally:
                self.unblock(req.caller, blocker)
        if hasattr(awaitable, "close"):
            awaitable.close()                   # type: ignore[attr-defined]
        raise SysError(blocker.err or errno.EINTR)
