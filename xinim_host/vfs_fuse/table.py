"""The VFS call vector (MINIX ``vfs/table.c``): message type -> handler."""
from __future__ import annotations

from typing import Any, Callable

from ..lib import protocol as p
from . import handlers_events as ev
from . import handlers_io as io
from . import handlers_node as node
from . import handlers_open as op
from . import handlers_path as pa
from . import handlers_proc as pr
from . import handlers_space as sp
from . import sockets as so
from . import mapcache, mount_calls, mqueue, sysv

CALL_VECTOR: dict[int, Callable[[Any, Any], Any]] = {
    # the plan's calls
    p.VFS_OPEN: op.do_open,
    p.VFS_CLOSE: op.do_close,
    p.VFS_READ: io.do_read,
    p.VFS_WRITE: io.do_write,
    p.VFS_LSEEK: io.do_lseek,
    p.VFS_STAT: pa.do_stat,
    p.VFS_FSTAT: pa.do_fstat,
    p.VFS_ACCESS: pa.do_access,
    p.VFS_DUP: op.do_dup,
    p.VFS_DUP2: op.do_dup2,
    p.VFS_PIPE: op.do_pipe,
    p.VFS_IOCTL: op.do_ioctl,
    p.VFS_FCNTL: op.do_fcntl,
    p.VFS_MKDIR: pa.do_mkdir,
    p.VFS_RMDIR: pa.do_rmdir,
    p.VFS_CHDIR: pa.do_chdir,
    p.VFS_GETCWD: pa.do_getcwd,
    p.VFS_LINK: pa.do_link,
    p.VFS_UNLINK: pa.do_unlink,
    p.VFS_RENAME: pa.do_rename,
    p.VFS_CHMOD: pa.do_chmod,
    p.VFS_CHOWN: pa.do_chown,
    # what real programs need beyond them
    p.VFS_GETDENTS: io.do_getdents,
    p.VFS_READ_GRANT: io.do_read_grant,
    p.VFS_WRITE_GRANT: io.do_write_grant,
    p.VFS_GETDENTS_GRANT: io.do_getdents_grant,
    p.VFS_READLINK: pa.do_readlink,
    p.VFS_SYMLINK: pa.do_symlink,
    p.VFS_TRUNCATE: pa.do_truncate,
    p.VFS_FTRUNCATE: io.do_ftruncate,
    p.VFS_UTIMENS: pa.do_utimens,
    p.VFS_FSYNC: io.do_fsync,
    p.VFS_FCHDIR: pa.do_fchdir,
    p.VFS_FCHMOD: pa.do_fchmod,
    p.VFS_FCHOWN: pa.do_fchown,
    p.VFS_UMASK: pa.do_umask,
    p.VFS_STATFS: pa.do_statfs,
    p.VFS_FSTATFS: pa.do_fstatfs,
    p.VFS_POLL: io.do_poll,
    p.VFS_POLL_GRANT: io.do_poll_grant,
    p.VFS_EXEC_OPEN: pa.do_exec_open,
    p.VFS_MKNOD: pa.do_mknod,
    p.VFS_FLOCK: op.do_flock,
    p.VFS_FDINFO: op.do_fdinfo,
    p.VFS_CLOSE_RANGE: sp.do_close_range,
    p.VFS_FALLOCATE: sp.do_fallocate,
    p.VFS_COPY: sp.do_copy,
    p.VFS_MEMFD: sp.do_memfd,
    p.VFS_CHROOT: sp.do_chroot,
    p.VFS_SET_LIMIT: sp.do_set_limit,
    p.VFS_OPENAT2: op.do_openat2,
    # event fds and waiting on many (handlers_events)
    p.VFS_EVENTFD: ev.do_eventfd,
    p.VFS_EPOLL_CREATE: ev.do_epoll_create,
    p.VFS_EPOLL_CTL: ev.do_epoll_ctl,
    p.VFS_EPOLL_WAIT: ev.do_epoll_wait,
    p.VFS_EPOLL_WAIT_GRANT: ev.do_epoll_wait_grant,
    p.VFS_TIMERFD_CREATE: ev.do_timerfd_create,
    p.VFS_TIMERFD_SETTIME: ev.do_timerfd_settime,
    p.VFS_TIMERFD_GETTIME: ev.do_timerfd_gettime,
    p.VFS_SIGNALFD: ev.do_signalfd,
    p.VFS_SIG_PENDING: ev.do_sig_pending,
    p.VFS_INOTIFY_INIT: ev.do_inotify_init,
    p.VFS_INOTIFY_ADD: ev.do_inotify_add,
    p.VFS_INOTIFY_RM: ev.do_inotify_rm,
    # notifications from PM / the kernel
    p.VFS_FORK: pr.do_fork,
    p.VFS_EXIT: pr.do_exit,
    p.VFS_EXEC: pr.do_exec,
    p.VFS_SETIDS: pr.do_setids,
    p.VFS_SETGROUPS: pr.do_setgroups,
    p.VFS_CANCEL: pr.do_cancel,
    p.VFS_NODE_STDIO: node.do_node_stdio,
    # sockets: the VFS side of NET's (sockets.py)
    p.VFS_SOCK_FD: so.do_sock_fd,
    p.VFS_SOCK_OF: so.do_sock_of,
    p.VFS_SOCK_BIND: so.do_sock_bind,
    p.VFS_SOCK_LOOKUP: so.do_sock_lookup,
    p.VFS_SOCK_READY: so.do_sock_ready,
    p.VFS_FDS_HOLD: so.do_fds_hold,
    p.VFS_FDS_INSTALL: so.do_fds_install,
    p.VFS_FDS_DROP: so.do_fds_drop,
    # System V semaphores and message queues (sysv.py)
    p.VFS_SYSV: sysv.do_sysv,
    p.VFS_MQ: mqueue.do_mq,
    p.VFS_MAP_CACHE: mapcache.do_map_cache,
    p.VFS_MOUNT: mount_calls.do_mount,
    p.VFS_UMOUNT: mount_calls.do_umount,
}
