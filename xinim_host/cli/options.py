"""Options every system-booting command shares: --mount, --image, --bind."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from contextlib import AsyncExitStack
from typing import Any

import trio

from ..system.boot import System
from ..vfs_fuse.mounts import DEFAULT_MOUNTS

log = logging.getLogger("xinim.cli")


def bind_spec(text: str) -> tuple[str, str, str]:
    """HOST:XINIM[:ro|rw] -> (host, xinim, mode)."""
    parts = text.split(":")
    if len(parts) == 2:
        parts.append("ro")
    if len(parts) != 3 or parts[2] not in ("ro", "rw") or not parts[1].startswith("/"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:XINIM[:ro|rw]")
    if not os.path.isdir(parts[0]):
        raise argparse.ArgumentTypeError(f"{parts[0]}: not a host directory")
    return parts[0], parts[1], parts[2]


def add_system_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mount", metavar="DIR",
                        help="export the ramfs on the host at DIR (FUSE)")
    parser.add_argument("--image", metavar="FILE",
                        help="keep the ramfs in FILE (+ FILE.wal): loaded at boot, fsync'd "
                        "data is on disk when fsync returns, the rest within 1 s "
                        "(README: Durability); SIGUSR1 folds the log into FILE")
    parser.add_argument("--bind", metavar="HOST:XINIM[:ro|rw]", type=bind_spec, action="append",
                        default=[], help="mount a host directory into XINIM (default read-only); "
                        "adds to /bin /lib /lib64 /usr /etc, replacing one at the same place")


def mounts_from(binds: list[tuple[str, str, str]]) -> list[tuple[str, str, str]] | None:
    if not binds:
        return None
    replaced = {xinim.rstrip("/") or "/" for _, xinim, _ in binds}
    kept = [m for m in DEFAULT_MOUNTS if (m[1].rstrip("/") or "/") not in replaced]
    return [*kept, *binds]


def load_ramfs(args: argparse.Namespace) -> Any:
    """The ramfs from ``--image`` (snapshot + its log) when the file exists (a bad
    image is an error); temp files of an interrupted save are removed."""
    if not args.image:
        return None
    from ..vfs_fuse.journal import open_image
    return open_image(args.image)


async def system_services(system: System, args: argparse.Namespace,
                          stack: AsyncExitStack) -> None:
    """Start the FUSE export and image saving that the options ask for."""
    if args.image:
        from ..lib.errors import SysError
        from ..vfs_fuse.journal import Journal

        # fsync & co. of ramfs files wait for it (vfs_fuse/handlers_io.py do_fsync)
        journal = Journal(system.vfs.ramfs, args.image)
        await journal.start(system.nursery)
        system.vfs.journal = journal
        stack.push_async_callback(_shielded, journal.close)

        async def on_usr1() -> None:
            with trio.open_signal_receiver(signal.SIGUSR1) as signals:
                async for _ in signals:
                    try:
                        await journal.checkpoint("SIGUSR1")
                    except SysError:
                        pass                     # logged; the log still holds everything

        system.nursery.start_soon(on_usr1)
    if args.mount:
        from ..vfs_fuse.fuse_export import serve_fuse
        where = await system.nursery.start(serve_fuse, system.vfs.ramfs, args.mount)
        args.mount = str(where)
        print(f"xinim: ramfs mounted at {where}", file=sys.stderr)


async def _shielded(fn: Any, *args: Any) -> None:
    with trio.CancelScope(shield=True):
        await fn(*args)


