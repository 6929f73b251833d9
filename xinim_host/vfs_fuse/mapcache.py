"""MAP_SHARED maps of ramfs files: one set of pages for every mapper.

The kernel asks ``VFS_MAP_CACHE`` for a ramfs regular file it is about to map
shared; the VFS answers the path of the file's memfd mirror (``Ramfs.share``:
made on the first such map, kept for the inode's life) and the tracee maps it
``MAP_SHARED|MAP_FIXED`` itself (kernel/calls/memory.py).  Every mapper, in
any process, across fork, maps the very same pages; ``read``/``write`` through
the VFS read from and write to the memfd too, so they see the mappers' stores
and the mappers see theirs at once; the size is the memfd's, so a touch past
the end of the file is the host's SIGBUS.  The ramfs pages (what the image,
the journal and ``fsync`` persist) catch up with the memfd on fsync/msync
(MS_SYNC), sync and at the file's last close (``Ramfs.sync_cache``).
"""
from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from ..lib import protocol as p
from ..lib.errors import SysError
from .handlers_common import caller_proc

if TYPE_CHECKING:
    from ..lib.server import Request
    from .server import VfsServer


def do_map_cache(srv: VfsServer, req: Request) -> p.VfsSysvReply:
    fp = caller_proc(srv, req)
    of = fp.get(req.msg.body.fd)
    if of.fs.kind != "ramfs" or of.io is None or not of.node.is_reg:
        raise SysError(errno.ENODEV, "only ramfs files have a shared-map mirror")
    try:
        fd = srv.ramfs.share(of.node)
    except OSError as exc:
        raise SysError(exc.errno or errno.ENOMEM) from None
    return p.VfsSysvReply(result=of.node.size, data=f"/proc/{os.getpid()}/fd/{fd}".encode())
