"""Options every system-booting command shares: --mount, --image, --bind, -o; and
their checks before the system boots (one line for each mistake)."""
from __future__ import annotations

import argparse
import errno
import logging
import os
import shutil
import signal
import stat
from contextlib import AsyncExitStack
from typing import Any

import trio

from ..system.boot import System
from ..vfs_fuse.mounts import DEFAULT_MOUNTS
from .common import USAGE, CliError

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
    if os.path.normpath(parts[1]) in ("/", "//"):
        raise argparse.ArgumentTypeError(
            f"{text!r}: XINIM's / is the ramfs and cannot be replaced; bind to a "
            "directory below it (HOST:/data)")
    return parts[0], parts[1], parts[2]


FUSE_FLAGS = ("allow_other", "ro")
FUSE_IDS = ("uid", "gid")


def fuse_options(text: str) -> list[str]:
    """``-o allow_other,ro,uid=N,gid=N`` (as other FUSE daemons take them)."""
    out = []
    for opt in filter(None, text.split(",")):
        name, eq, value = opt.partition("=")
        if (not eq and name in FUSE_FLAGS) or (eq and name in FUSE_IDS and value.isdigit()):
            out.append(opt)
        else:
            raise argparse.ArgumentTypeError(
                f"-o {opt}: unknown FUSE option (known: allow_other, ro, uid=N, gid=N)")
    return out


def add_log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="XINIM's diagnostics on the terminal (boot log, server logs, "
                        "unsupported syscalls); -vv adds debug detail and tracebacks")
    parser.add_argument("--log", metavar="FILE", default=None,
                        help="append XINIM's diagnostics to FILE (default: $XINIM_LOG; "
                        "without either, and without -v, they are dropped)")


def add_system_options(parser: argparse.ArgumentParser, *,
                       o_names_trace_file: bool = False) -> None:
    """``o_names_trace_file``: xinim-run's ``-o`` is also strace's ``-o FILE``
    (``trace_opts.split_o_values`` tells them apart after parsing)."""
    parser.add_argument("--mount", metavar="DIR",
                        help="export the ramfs on the host at DIR (FUSE)")
    parser.add_argument("--image", metavar="FILE",
                        help="keep the ramfs in FILE (+ FILE.wal): loaded at boot, fsync'd "
                        "data is on disk when fsync returns, the rest within 1 s "
                        "(README: Durability); SIGUSR1 folds the log into FILE")
    parser.add_argument("--bind", metavar="HOST:XINIM[:ro|rw]", type=bind_spec, action="append",
                        default=[], help="mount a host directory into XINIM (default read-only); "
                        "adds to /bin /lib /lib64 /usr /etc, replacing one at the same place")
    fuse_help = ("options of the --mount export: allow_other (other users see "
                 "it too; needs user_allow_other in /etc/fuse.conf unless root), ro, "
                 "uid=N,gid=N (every file shows this owner)")
    if o_names_trace_file:
        parser.add_argument("-o", metavar="OPTS|FILE", dest="o_values", action="append",
                            default=[], help=fuse_help + "; any other value is strace's "
                            "-o FILE: the trace goes to FILE")
    else:
        parser.add_argument("-o", metavar="OPT[,OPT...]", dest="fuse_options", type=fuse_options,
                            action="extend", default=[], help=fuse_help)


def check_system_options(args: argparse.Namespace) -> None:
    """The mistakes in --mount/--image/-o, each as one line, before anything boots.
    Parents are never created: a typo must not make directories."""
    if args.fuse_options and not args.mount:
        raise CliError("-o: FUSE options need --mount DIR", USAGE)
    if args.mount:
        _check_mount_dir(args.mount)
        _check_dev_fuse()
    if args.image:
        path = os.path.abspath(args.image)
        _check_parent("--image", args.image, os.path.dirname(path))
        if os.path.isdir(path):
            raise CliError(f"--image {args.image}: is a directory; give a file "
                           "(made at the first save)", USAGE)


def _check_parent(option: str, given: str, parent: str) -> None:
    try:
        st = os.stat(parent)
    except FileNotFoundError:
        raise CliError(f"{option} {given}: {parent} does not exist; create it first "
                       "(parents are not made)", USAGE) from None
    except OSError as exc:
        raise CliError(f"{option} {given}: {parent}: {exc.strerror}", USAGE) from None
    if not stat.S_ISDIR(st.st_mode):
        raise CliError(f"{option} {given}: {parent} is not a directory", USAGE)
    if not os.access(parent, os.X_OK):
        raise CliError(f"{option} {given}: {parent}: Permission denied", USAGE)


def _check_mount_dir(where: str) -> None:
    from ..vfs_fuse.mountpoint import mounts_at
    path = os.path.abspath(where)
    _check_parent("--mount", where, os.path.dirname(path))
    live = [m for m in mounts_at(path) if m.is_fuse]
    try:
        os.stat(path)
    except FileNotFoundError:
        return                       # made at mount time (the one directory, like mkdir)
    except OSError:
        return                       # a dead FUSE mount: cleaned up at mount time
    if live:
        raise CliError(f"{where}: is a live mount ({live[-1].fstype}); unmount it "
                       f"(fusermount3 -u {where}) or give an empty directory", USAGE)
    if not os.path.isdir(path):
        raise CliError(f"{where}: mountpoint is a file; give an empty directory", USAGE)
    if not os.path.ismount(path):     # mounting on a (non-FUSE) mount hides nothing
        try:
            busy = next(iter(os.scandir(path)), None) is not None
        except OSError as exc:
            raise CliError(f"{where}: {exc.strerror}; give an empty directory", USAGE) from None
        if busy:
            raise CliError(f"{where}: mountpoint is not empty; give an empty directory "
                           "(the mount would hide what it holds)", USAGE)


def _check_dev_fuse() -> None:
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as exc:
        if exc.errno == errno.EACCES and os.geteuid() != 0 and _setuid_fusermount():
            return                   # libfuse mounts through it (it opens /dev/fuse as root)
        raise CliError(f"--mount needs /dev/fuse: {exc.strerror}; load the fuse module "
                       "(modprobe fuse) or run where /dev/fuse is usable") from None


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
                          stack: AsyncExitStack) -> trio.Event | None:
    """Start the FUSE export and image saving that the options ask for.  Returns
    an event set when the export ends (unmounted from outside), if there is one."""
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
    if not args.mount:
        return None
    from ..vfs_fuse.fuse_export import serve_fuse
    flags = [o for o in args.fuse_options if "=" not in o]
    ids = dict(o.split("=") for o in args.fuse_options if "=" in o)
    ended = trio.Event()

    async def export(task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await serve_fuse(system.vfs.ramfs, args.mount, task_status=task_status,
                             options=flags, uid=_int_or_none(ids.get("uid")),
                             gid=_int_or_none(ids.get("gid")))
        finally:
            ended.set()

    where = await system.nursery.start(export)
    args.mount = str(where)
    # The kernel's first look at a fresh FUSE root may deny other users (until a
    # getattr has refreshed the root's attributes); take that look now, from a
    # worker thread (the trio thread serves the mount).
    await trio.to_thread.run_sync(os.stat, where)
    log.info("ramfs mounted at %s%s", where,
             f" (-o {','.join(args.fuse_options)})" if args.fuse_options else "")
    return ended


def _setuid_fusermount() -> bool:
    exe = shutil.which("fusermount3")
    try:
        return exe is not None and bool(os.stat(exe).st_mode & stat.S_ISUID)
    except OSError:
        return False


def _int_or_none(text: str | None) -> int | None:
    return None if text is None else int(text)


async def _shielded(fn: Any, *args: Any) -> None:
    with trio.CancelScope(shield=True):
        await fn(*args)


